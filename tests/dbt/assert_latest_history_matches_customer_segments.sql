-- At the snapshot date, the history's SQL-scored segments equal customer_segments'.
select
    history.customer_id,
    history.cluster_id as history_cluster_id,
    segments.cluster_id
from {{ ref('customer_segment_history') }} as history
inner join {{ ref('customer_segments') }} as segments
    on
        history.customer_id = segments.customer_id
        and history.snapshot_date = segments.snapshot_date
where history.cluster_id != segments.cluster_id
