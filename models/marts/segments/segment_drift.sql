-- How far today's customers have moved from the data the reference model was fitted on: the
-- model that scored this build, or on a refit the previous registered model. Per clustering
-- feature the population stability index over the reference's decile bins; per segment
-- (stable segment_id) the share of customers, in points, and, when the build scored with the
-- model (var refit false), the mean distance to the centroid. The warn tests (tests/dbt/warn_*)
-- flag rows past the vars' thresholds. No rows on the first build: there is no earlier model to
-- compare with.
{%- set features = var('clustering_features') %}

with

plan as (

    select * from {{ ref('segment_model_plan') }}

),

segment_models as (

    select * from {{ ref('segment_models') }}

),

model_segments as (

    select * from {{ ref('segment_model_segments') }}

),

customer_features as (

    select * from {{ ref('customer_features') }}

),

customer_clusters as (

    select * from {{ ref('customer_clusters') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

models_compared as (

    select
        coalesce(plan.model_in_use_id, plan.previous_model_id) as reference_model_id,
        max(segment_models.model_id) as current_model_id,
        any_value(plan.refit) as is_refitted

    from plan
    cross join segment_models
    group by all

),

reference_bins as (

    select
        segment_models.model_id,
        {{ json_records('segment_models.feature_bins_json', {
            'feature': 'varchar',
            'bin': 'bigint',
            'lower': 'double',
            'upper': 'double',
            'share': 'double',
        }) }}

    from segment_models
    inner join models_compared on segment_models.model_id = models_compared.reference_model_id

),

feature_values as (

    {%- for feature in features %}
        select
            customer_id,
            '{{ feature }}' as feature,
            cast({{ feature }} as double) as feature_value
        from customer_features
        {{- '\n        union all' if not loop.last }}
    {%- endfor %}

),

customer_count as (

    select count(*) as n_customers from customer_features

),

current_bins as (

    select
        reference_bins.feature,
        reference_bins.bin,
        count(*) as n_customers

    from feature_values
    inner join reference_bins
        on
            feature_values.feature = reference_bins.feature
            and coalesce(feature_values.feature_value > reference_bins.lower, true)
            and coalesce(feature_values.feature_value <= reference_bins.upper, true)
    group by all

),

-- Shares floored at 0.0001: an empty bin would make the index infinite.
bin_terms as (

    select
        reference_bins.feature,
        reference_bins.share as reference_share,
        coalesce(current_bins.n_customers, 0) / customer_count.n_customers as current_share,
        greatest(reference_bins.share, 0.0001) as floored_reference,
        greatest(coalesce(current_bins.n_customers, 0) / customer_count.n_customers, 0.0001)
            as floored_current

    from reference_bins
    cross join customer_count
    left join current_bins
        on reference_bins.feature = current_bins.feature and reference_bins.bin = current_bins.bin

),

feature_drift as (

    select
        'population_stability_index' as measure,
        feature as subject,
        cast(null as bigint) as segment_id,
        cast(null as double) as reference_value,
        cast(null as double) as current_value,
        sum((floored_current - floored_reference) * ln(floored_current / floored_reference))
            as drift,
        cast({{ var('drift_max_psi') }} as double) as threshold

    from bin_terms
    group by feature

),

current_segments as (

    select
        segment_names.segment_id,
        any_value(segment_names.segment_name) as segment_name,
        count(*) / any_value(customer_count.n_customers) as customer_share,
        avg(customer_clusters.distance_to_centroid) as mean_distance_to_centroid

    from customer_clusters
    inner join segment_names on customer_clusters.cluster_id = segment_names.cluster_id
    cross join customer_count
    group by segment_names.segment_id

),

reference_segments as (

    select model_segments.*
    from model_segments
    inner join models_compared on model_segments.model_id = models_compared.reference_model_id
    where model_segments.status != 'retired'

),

segments_compared as (

    select
        coalesce(current_segments.segment_id, reference_segments.segment_id) as segment_id,
        coalesce(current_segments.segment_name, reference_segments.segment_name) as segment_name,
        coalesce(reference_segments.customer_share, 0) as reference_share,
        coalesce(current_segments.customer_share, 0) as current_share,
        reference_segments.mean_distance_to_centroid as reference_distance,
        current_segments.mean_distance_to_centroid as current_distance

    from current_segments
    full outer join reference_segments
        on current_segments.segment_id = reference_segments.segment_id

),

share_drift as (

    select
        'segment_share_points' as measure,
        segment_name as subject,
        segment_id,
        100 * reference_share as reference_value,
        100 * current_share as current_value,
        abs(100 * (current_share - reference_share)) as drift,
        cast({{ var('drift_max_share_points') }} as double) as threshold

    from segments_compared

),

distance_drift as (

    select
        'mean_distance_growth' as measure,
        segments_compared.segment_name as subject,
        segments_compared.segment_id,
        segments_compared.reference_distance as reference_value,
        segments_compared.current_distance as current_value,
        segments_compared.current_distance / nullif(segments_compared.reference_distance, 0) - 1
            as drift,
        cast({{ var('drift_max_distance_growth') }} as double) as threshold

    from segments_compared
    cross join models_compared
    -- On a refit the new centroids were fitted to today's customers, so their distances are
    -- not comparable with the previous model's: only when scoring with the model in use.
    where
        segments_compared.reference_distance is not null
        and segments_compared.current_distance is not null
        and not models_compared.is_refitted

),

measures as (

    select * from feature_drift
    union all
    select * from share_drift
    union all
    select * from distance_drift

),

final as (

    select
        measures.measure,
        measures.subject,
        measures.segment_id,
        models_compared.reference_model_id,
        models_compared.current_model_id,
        measures.reference_value,
        measures.current_value,
        measures.drift,
        measures.threshold,
        coalesce(measures.drift > measures.threshold, false) as is_drifted

    from measures
    cross join models_compared
    where models_compared.reference_model_id is not null

)

select * from final
