-- Every registered model's segments, one row per (model, segment): the identity history. A
-- segment keeps its segment_id from model to model while a cluster of the new fit matches it
-- (status kept); a cluster that matches none is new; a previous segment no cluster matches is
-- retired (no cluster_id in that model).
with

segment_models as (

    select * from {{ ref('segment_models') }}

),

segments as (

    select
        model_id,
        fitted_at,
        previous_model_id,
        {{ json_records('segments_json', {
            'segment_id': 'bigint',
            'cluster_id': 'bigint',
            'status': 'varchar',
            'segment_name': 'varchar',
            'archetype': 'varchar',
            'previous_cluster_id': 'bigint',
            'match_distance': 'double',
            'n_customers': 'bigint',
            'customer_share': 'double',
            'mean_distance_to_centroid': 'double',
            'center': 'json',
        }) }}

    from segment_models

),

latest as (

    select max(model_id) as model_id from segment_models

),

final as (

    select
        segments.model_id,
        segments.segment_id,
        segments.cluster_id,
        segments.status,
        segments.segment_name,
        segments.archetype,
        segments.previous_model_id,
        segments.previous_cluster_id,
        segments.match_distance,
        segments.n_customers,
        segments.customer_share,
        segments.mean_distance_to_centroid,
        cast(segments.center as {{ dbt.type_string() }}) as center,
        segments.fitted_at,
        segments.model_id = latest.model_id as is_latest_model

    from segments
    cross join latest

)

select * from final
