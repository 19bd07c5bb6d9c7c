{#-
    The scaled clustering features of a relation with customer_features' columns, computed in
    SQL from the stored scaler_parameters: (clip(transform(x), lower, upper) - center) / scale.
    key_columns are carried through (customer_id, or snapshot_date and customer_id).
    This is the matrix the Python models fit on, and what assign_segment scores.

    relation and scaler_parameters are names of relations or CTEs: the caller imports
    scaler_parameters (ref('scaler_parameters')) and passes it, so its model shows the input.
-#}
{% macro scale_features(relation, scaler_parameters, key_columns=['customer_id']) %}
    {%- set features = var('clustering_features') -%}

    select
        {% for key in key_columns -%}
            features.{{ key }},
        {% endfor -%}
        {%- for feature in features %}
            (
                least(
                    greatest(
                        case
                            when scaling_{{ loop.index }}.transform = 'log1p'
                                then ln(1 + features.{{ feature }})
                            else features.{{ feature }}
                        end,
                        scaling_{{ loop.index }}.clip_lower
                    ),
                    scaling_{{ loop.index }}.clip_upper
                )
                - scaling_{{ loop.index }}.center
            ) / scaling_{{ loop.index }}.scale as {{ feature }}{{ ',' if not loop.last }}
        {%- endfor %}

    from {{ relation }} as features
    {%- for feature in features %}
        inner join {{ scaler_parameters }} as scaling_{{ loop.index }}
            on scaling_{{ loop.index }}.feature = '{{ feature }}'
    {%- endfor %}

{% endmacro %}
