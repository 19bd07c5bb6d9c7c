-- The migration heatmap: the moves of the last full period (month or quarter). The partial
-- period to the snapshot date is left out, as a few days would put nearly every customer on the
-- diagonal; without a full period (a snapshot date inside the first period) it is shown
-- instead. No rows when there is only one snapshot date.
with

segment_migration as (

    select * from {{ ref('segment_migration') }}

),

periods as (

    select
        *,
        -- month_to_date or quarter_to_date: from the last period end to the snapshot date.
        right(period_kind, 8) = '_to_date' as is_partial_period

    from segment_migration

),

has_full_period as (

    select coalesce(bool_or(not is_partial_period), false) as has_full_period

    from periods

),

shown_periods as (

    select periods.*

    from periods
    cross join has_full_period
    where not periods.is_partial_period or not has_full_period.has_full_period

),

last_shown_period as (

    select max(to_snapshot_date) as to_snapshot_date

    from shown_periods

),

final as (

    select
        shown_periods.from_snapshot_date,
        shown_periods.to_snapshot_date,
        shown_periods.period_kind,
        shown_periods.period_days,
        shown_periods.from_cluster_id,
        shown_periods.from_segment_id,
        shown_periods.from_segment_name,
        shown_periods.to_cluster_id,
        shown_periods.to_segment_id,
        shown_periods.to_segment_name,
        shown_periods.n_customers,
        shown_periods.n_ordered_in_period,
        shown_periods.n_lapsed_in_period

    from shown_periods
    inner join last_shown_period
        on shown_periods.to_snapshot_date = last_shown_period.to_snapshot_date

)

select * from final
