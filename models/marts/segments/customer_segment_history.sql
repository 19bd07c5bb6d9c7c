-- Each customer's segment at the period ends (month or quarter ends, var migration_period) of
-- the last migration_months months and at the snapshot date: the SQL features
-- re-run as of each date (customer_features_at) and scored with the persisted model
-- (assign_segment), so segments at every date are comparable. Only the columns scoring and
-- this table read are computed.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

customer_products as (

    select * from {{ ref('int_customer_products_aggregated') }}

),

returned_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_product_return

),

-- The persisted model: how to scale features, and the centres to score them against.
scaler_parameters as (

    select * from {{ ref('scaler_parameters') }}

),

cluster_centroids as (

    select * from {{ ref('cluster_centroids') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

current_snapshot as (

    select min(snapshot_date) as snapshot_date from customer_features

),

months_back as (

    {{ integer_range(0, var('migration_months'), 'i') }}

),

-- Features as of date d count orders before d, so the first day of a month stands for the
-- month end before it; with quarters, only the first days of January, April, July, October.
period_ends as (

    select distinct
        {{ add_months(month_start('current_snapshot.snapshot_date'), '-months_back.i') }}
            as snapshot_date

    from current_snapshot
    cross join months_back

),

full_periods as (

    select snapshot_date from period_ends
    {%- if var('migration_period') == 'quarter' %}
        where month(snapshot_date) in (1, 4, 7, 10)
    {%- endif %}

),

-- The snapshot date ends a partial period ("period to date") unless it is a period end itself.
snapshot_dates as (

    select
        snapshot_date,
        true as is_period_end

    from full_periods

    union all

    select
        current_snapshot.snapshot_date,
        false as is_period_end

    from current_snapshot
    left join full_periods on current_snapshot.snapshot_date = full_periods.snapshot_date
    where full_periods.snapshot_date is null

),

features_over_time as (

    {{ customer_features_at(
        'snapshot_dates',
        'orders',
        'customer_products',
        'returned_lines',
        columns=var('clustering_features') + ['recency_days', 'frequency', 'monetary'],
        many_snapshots=true,
    ) }}

),

scored as (

    {{ assign_segment(
        'features_over_time',
        'scaler_parameters',
        'cluster_centroids',
        key_columns=['snapshot_date', 'customer_id'],
    ) }}

),

final as (

    select
        features_over_time.snapshot_date,
        snapshot_dates.is_period_end,
        features_over_time.customer_id,
        scored.cluster_id,
        segment_names.segment_id,
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
    inner join snapshot_dates on features_over_time.snapshot_date = snapshot_dates.snapshot_date

)

select * from final
