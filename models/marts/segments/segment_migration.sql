-- Customers moving between segments from one snapshot to the next. Customers whose first
-- purchase falls between the two dates enter from '(new customer)'. Consecutive period ends are
-- full periods (period_kind month or quarter); the last period end to a snapshot date inside a
-- period is its own, shorter, 'month_to_date' or 'quarter_to_date' pair, never taken for a full
-- period (period_days says how long each pair is).
with

history as (

    select * from {{ ref('customer_segment_history') }}

),

snapshot_dates as (

    select distinct
        snapshot_date,
        is_period_end

    from history

),

snapshot_pairs as (

    select
        snapshot_date as from_snapshot_date,
        lead(snapshot_date) over (order by snapshot_date) as to_snapshot_date,
        lead(is_period_end) over (order by snapshot_date) as ends_a_period

    from snapshot_dates
    qualify to_snapshot_date is not null

),

transitions as (

    select
        snapshot_pairs.from_snapshot_date,
        snapshot_pairs.to_snapshot_date,
        case
            when snapshot_pairs.ends_a_period then '{{ var("migration_period") }}'
            else '{{ var("migration_period") }}_to_date'
        end as period_kind,
        {{ days_between('snapshot_pairs.from_snapshot_date', 'snapshot_pairs.to_snapshot_date') }}
            as period_days,
        earlier.cluster_id as from_cluster_id,
        earlier.segment_id as from_segment_id,
        coalesce(earlier.segment_name, '(new customer)') as from_segment_name,
        later.cluster_id as to_cluster_id,
        later.segment_id as to_segment_id,
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
        period_kind,
        period_days,
        from_cluster_id,
        from_segment_id,
        from_segment_name,
        to_cluster_id,
        to_segment_id,
        to_segment_name,
        count(*) as n_customers,
        count(*) filter (where is_entered) as n_entered,
        count(*) filter (where ordered_in_period) as n_ordered_in_period,
        count(*) filter (where lapsed_in_period) as n_lapsed_in_period

    from transitions
    group by all

)

select * from final
