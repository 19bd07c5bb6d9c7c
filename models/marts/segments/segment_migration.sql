-- Customers moving between segments from one snapshot to the next. Customers whose first
-- purchase falls between the two dates enter from '(new customer)'.
with

history as (

    select * from {{ ref('customer_segment_history') }}

),

snapshot_pairs as (

    select
        snapshot_date as from_snapshot_date,
        lead(snapshot_date) over (order by snapshot_date) as to_snapshot_date

    from (select distinct snapshot_date from history) as snapshot_dates
    qualify to_snapshot_date is not null

),

transitions as (

    select
        snapshot_pairs.from_snapshot_date,
        snapshot_pairs.to_snapshot_date,
        earlier.cluster_id as from_cluster_id,
        coalesce(earlier.segment_name, '(new customer)') as from_segment_name,
        later.cluster_id as to_cluster_id,
        later.segment_name as to_segment_name,
        earlier.customer_id is null as is_entered,
        later.frequency > coalesce(earlier.frequency, 0) as ordered_in_period,
        later.is_lapsed and not coalesce(earlier.is_lapsed, false) as lapsed_in_period

    from snapshot_pairs
    inner join history as later on snapshot_pairs.to_snapshot_date = later.snapshot_date
    left join history as earlier
        on
            snapshot_pairs.from_snapshot_date = earlier.snapshot_date
            and later.customer_id = earlier.customer_id

),

final as (

    select
        from_snapshot_date,
        to_snapshot_date,
        from_cluster_id,
        from_segment_name,
        to_cluster_id,
        to_segment_name,
        count(*) as n_customers,
        count(*) filter (where is_entered) as n_entered,
        count(*) filter (where ordered_in_period) as n_ordered_in_period,
        count(*) filter (where lapsed_in_period) as n_lapsed_in_period

    from transitions
    group by all

)

select * from final
order by from_snapshot_date, from_cluster_id nulls first, to_cluster_id
