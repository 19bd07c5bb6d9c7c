-- The segment profile heatmap: the z-score of each segment's mean, for every profiled feature
-- with a spread (a feature alike for every customer has no z-score and is left out).
with

segment_feature_profiles as (

    select * from {{ ref('segment_feature_profiles') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

with_z_score as (

    select * from segment_feature_profiles
    where z_score is not null

),

final as (

    select
        with_z_score.cluster_id,
        with_z_score.feature,
        with_z_score.mean_value,
        with_z_score.population_mean,
        with_z_score.z_score,
        segment_names.segment_name

    from with_z_score
    inner join segment_names on with_z_score.cluster_id = segment_names.cluster_id

)

select * from final
