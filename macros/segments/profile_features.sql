{#- The customer_features columns described per segment (means, medians, lifts, z-scores). -#}
{% macro profile_features() %}
    {{ return([
        'recency_days', 'frequency', 'monetary', 'tenure_days', 'average_order_value',
        'average_items_per_order', 'distinct_products', 'mean_days_between_orders',
        'return_rate', 'share_of_orders_last_90_days', 'weekend_share_of_orders',
        'mean_order_hour',
    ]) }}
{% endmacro %}

{#-
    The dimensions segment names are matched on, with their transform: log1p for the skewed
    ones so a few extreme customers do not decide a cluster's name.
-#}
{% macro naming_dimensions() %}
    {{ return({
        'recency': 'ln(1 + recency_days)',
        'frequency': 'ln(1 + frequency)',
        'monetary': 'ln(1 + monetary)',
        'tenure': 'tenure_days',
        'average_order_value': 'ln(1 + average_order_value)',
        'return_rate': 'return_rate',
    }) }}
{% endmacro %}
