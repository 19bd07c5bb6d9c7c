{#-
    Score customers with the persisted model, in SQL alone: scale the relation's clustering
    features with scaler_parameters, then take the nearest centre in cluster_centroids
    (Euclidean; ties go to the lowest cluster_id, as in Python).

    relation: has key_columns and the clustering feature columns (e.g. customer_features, or
    features as of past dates). Returns key_columns, cluster_id, distance_to_centroid.
-#}
{% macro assign_segment(relation, key_columns=['customer_id']) %}
    {%- set features = var('clustering_features') -%}

    with

    scaled as (

        {{ scale_features(relation, key_columns) }}

    ),

    centroids as (

        select
            cluster_id,
            {%- for feature in features %}
                max(center_scaled) filter (where feature = '{{ feature }}')
                    as {{ feature }}{{ ',' if not loop.last }}
            {%- endfor %}

        from {{ ref('cluster_centroids') }}
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

    )

    select
        {% for key in key_columns -%}
            {{ key }},
        {% endfor -%}
        cluster_id,
        distance_to_centroid

    from distances
    qualify row_number() over (
        partition by {{ key_columns | join(', ') }}
        order by distance_to_centroid asc, cluster_id asc
    ) = 1

{% endmacro %}
