{#-
    One row per customer and RFM dimension (recency, frequency, monetary) of a relation with
    customer_features' columns, so thresholds and scores treat the three dimensions alike.
-#}
{% macro rfm_dimension_values(relation) %}

    select
        customer_id,
        'recency' as dimension,
        cast(recency_days as double) as dimension_value
    from {{ relation }}

    union all

    select
        customer_id,
        'frequency' as dimension,
        cast(frequency as double) as dimension_value
    from {{ relation }}

    union all

    select
        customer_id,
        'monetary' as dimension,
        cast(monetary as double) as dimension_value
    from {{ relation }}

{% endmacro %}
