-- Customers whose segment changed between the last month end and the snapshot date, leaving
-- out those who returned everything or much of what they bought (customer_segments'
-- suppression_reason; outliers stay: a move is worth a look).
with

history as (

    select * from {{ ref('customer_segment_history') }}

),

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

snapshot_dates as (

    select distinct snapshot_date from history

),

ranked_dates as (

    select
        snapshot_date,
        row_number() over (order by snapshot_date desc) as dates_back
    from snapshot_dates

),

earlier as (

    select history.*
    from history
    inner join ranked_dates on history.snapshot_date = ranked_dates.snapshot_date
    where ranked_dates.dates_back = 2

),

later as (

    select history.*
    from history
    inner join ranked_dates on history.snapshot_date = ranked_dates.snapshot_date
    where ranked_dates.dates_back = 1

)

select
    later.customer_id,
    -- The last period end: a month end, or a quarter end with migration_period quarter.
    earlier.snapshot_date as since_date,
    coalesce(earlier.segment_name, '(new customer)') as segment_before,
    later.segment_name as segment_now,
    later.recency_days,
    later.frequency,
    later.monetary
from later
inner join customer_segments on later.customer_id = customer_segments.customer_id
left join earlier on later.customer_id = earlier.customer_id
where
    earlier.cluster_id is distinct from later.cluster_id
    and coalesce(customer_segments.suppression_reason, 'outlier') = 'outlier'
order by later.monetary desc
