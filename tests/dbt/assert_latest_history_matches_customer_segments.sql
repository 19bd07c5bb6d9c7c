-- At the snapshot date, the history's SQL-scored segments equal customer_segments'.
with

history as (

    select * from {{ ref('customer_segment_history') }}

),

customer_segments as (

    select * from {{ ref('customer_segments') }}

)

select
    history.customer_id,
    history.cluster_id as history_cluster_id,
    customer_segments.cluster_id

from history
inner join customer_segments
    on
        history.customer_id = customer_segments.customer_id
        and history.snapshot_date = customer_segments.snapshot_date
where history.cluster_id != customer_segments.cluster_id
