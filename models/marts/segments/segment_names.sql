-- The segments of the model in use (the latest in segment_models): for each of its clusters the
-- stable segment_id, the name and the archetype it keeps across refits, the action, and the
-- cluster's z-profile on the naming dimensions (cluster_archetypes). A new model's cluster that
-- matches a segment of the previous model keeps that segment's id and name.
{%- set dimensions = naming_dimensions() %}

with

cluster_archetypes as (

    select * from {{ ref('cluster_archetypes') }}

),

model_segments as (

    select * from {{ ref('segment_model_segments') }}
    where is_latest_model and status != 'retired'

),

archetypes as (

    select * from {{ ref('segment_archetypes') }}

),

final as (

    select
        cluster_archetypes.cluster_id,
        model_segments.segment_id,
        model_segments.segment_name,
        model_segments.model_id,
        model_segments.status as segment_status,
        model_segments.archetype,
        archetypes.description as archetype_description,
        archetypes.recommended_action,
        {%- for dimension in dimensions %}
            cluster_archetypes.{{ dimension }}_z,
        {%- endfor %}
        cluster_archetypes.archetype as nearest_archetype,
        cluster_archetypes.profile_distance,
        case
            when model_segments.status = 'kept'
                then
                    'kept from model ' || model_segments.previous_model_id
                    || ' (nearest previous segment, Hungarian matching of centroids)'
            else cluster_archetypes.naming_rule
        end as naming_rule

    from cluster_archetypes
    inner join model_segments on cluster_archetypes.cluster_id = model_segments.cluster_id
    left join archetypes on model_segments.archetype = archetypes.archetype

)

select * from final
