{#-
    Score customers with the persisted model, in SQL alone: scale the relation's clustering
    features with scaler_parameters, then take the nearest centre in cluster_centroids
    (Euclidean; ties go to the lowest cluster_id, as in Python).

    relation: has key_columns and the clustering feature columns (e.g. customer_features, or
    features as of past dates). scaler_parameters and cluster_centroids: the persisted model,
    imported by the caller (ref('scaler_parameters'), ref('cluster_centroids')) and passed by
    name, so the caller's model shows every input. Returns key_columns, cluster_id,
    distance_to_centroid.
-#}
{% macro assign_segment(relation, scaler_parameters, cluster_centroids, key_columns=['customer_id']) %}
    {%- set features = var('clustering_features') -%}

    with

    scaled as (

        {{ scale_features(relation, scaler_parameters, key_columns) }}

    ),

    centroids as (

        select
            cluster_id,
            {%- for feature in features %}
                max(center_scaled) filter (where feature = '{{ feature }}')
                    as {{ feature }}{{ ',' if not loop.last }}
            {%- endfor %}

        from {{ cluster_centroids }}
        group by cluster_id

    ),

    distances as (

        select
            {% for key in key_columns -%}
                scaled.{{ key }},
            {% endfor -%}
            centroids.cluster_id,
            sqrt(
                {%- for feature in features %}
                    power(scaled.{{ feature }} - centroids.{{ feature }}, 2)
                    {{- ' +' if not loop.last }}
                {%- endfor %}
            ) as distance_to_centroid

        from scaled
        cross join centroids

    ),

    -- The nearest centre per key: the least (distance, cluster_id) pair, one aggregate
    -- instead of a window that sorts every (key, cluster) row.
    nearest as (

        select
            {% for key in key_columns -%}
                {{ key }},
            {% endfor -%}
            min({{ named_struct({
                'distance_to_centroid': 'distance_to_centroid',
                'cluster_id': 'cluster_id',
            }) }}) as nearest_centroid

        from distances
        group by {{ key_columns | join(', ') }}

    )

    select
        {% for key in key_columns -%}
            {{ key }},
        {% endfor -%}
        nearest_centroid.cluster_id,
        nearest_centroid.distance_to_centroid

    from nearest

{% endmacro %}
