-- The lift bars: segment mean / all customers' mean of the key features, one panel each in
-- feature_order. Lifts of 0 or less (or none, when everyone's mean is 0) cannot be drawn on
-- the chart's log axis and are left out.
with

segment_feature_profiles as (

    select * from {{ ref('segment_feature_profiles') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

key_features as (

    select * from (
        values
        ('recency_days', 1),
        ('frequency', 2),
        ('monetary', 3),
        ('return_rate', 4)
    ) as features (feature, feature_order)  -- noqa: AL05

),

drawable_lifts as (

    select * from segment_feature_profiles
    where lift > 0

),

final as (

    select
        drawable_lifts.cluster_id,
        drawable_lifts.feature,
        drawable_lifts.mean_value,
        drawable_lifts.population_mean,
        drawable_lifts.lift,
        segment_names.segment_name,
        key_features.feature_order

    from drawable_lifts
    inner join key_features on drawable_lifts.feature = key_features.feature
    inner join segment_names on drawable_lifts.cluster_id = segment_names.cluster_id

)

select * from final
