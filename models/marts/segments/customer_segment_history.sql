-- Each customer's segment at the last N month ends and at the snapshot date: the SQL features
-- re-run as of each date (customer_features_at) and scored with the persisted model
-- (assign_segment), so segments at every date are comparable. Only the columns scoring and
-- this table read are computed.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

-- Features as of date d count orders before d, so the first day of a month stands for the
-- month end before it.
snapshot_dates as (

    select distinct snapshot_date from (
        select
            {{ add_months(month_start('current_snapshot.snapshot_date'), '-months_back.i') }}
                as snapshot_date
        from (
            select min(snapshot_date) as snapshot_date from customer_features
        ) as current_snapshot
        cross join ({{ integer_range(0, var('migration_months'), 'i') }}) as months_back

        union all

        select min(snapshot_date) as snapshot_date from customer_features
    )

),

features_over_time as (

    {{ customer_features_at(
        'snapshot_dates',
        var('clustering_features') + ['recency_days', 'frequency', 'monetary'],
    ) }}

),

scored as (

    {{ assign_segment('features_over_time', ['snapshot_date', 'customer_id']) }}

),

final as (

    select
        features_over_time.snapshot_date,
        features_over_time.customer_id,
        scored.cluster_id,
        segment_names.segment_name,
        scored.distance_to_centroid,
        features_over_time.recency_days,
        features_over_time.frequency,
        features_over_time.monetary,
        features_over_time.recency_days >= {{ var('lapsed_after_days') }} as is_lapsed

    from features_over_time
    inner join scored
        on
            features_over_time.snapshot_date = scored.snapshot_date
            and features_over_time.customer_id = scored.customer_id
    inner join segment_names on scored.cluster_id = segment_names.cluster_id

)

select * from final
