{%- set attributes_path = var('customer_attributes_path') -%}
{%- set feature_columns = [
    'snapshot_date', 'first_order_date', 'last_order_date', 'recency_days', 'frequency',
    'monetary', 'tenure_days', 'average_order_value', 'average_items_per_order',
    'distinct_products', 'mean_days_between_orders', 'median_days_between_orders',
    'returned_value', 'return_rate', 'share_of_orders_last_90_days', 'weekend_share_of_orders',
    'mean_order_hour', 'preferred_order_hour', 'main_country',
] -%}

with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

-- The day after the latest kept order, unless the snapshot_date var fixes it.
snapshot_dates as (

    {% if var('snapshot_date') -%}
        select cast({{ sql_string(var('snapshot_date')) }} as date) as snapshot_date
    {%- else -%}
        select {{ add_days('max(order_date)', 1) }} as snapshot_date
        from orders
    {%- endif %}

),

features as (

    {{ customer_features_at('snapshot_dates') }}

),

{% if attributes_path -%}
attributes as (

    select * from {{ customer_attributes_source(attributes_path, feature_columns) }}

),
{%- endif %}

final as (

    {% if attributes_path -%}
        select
            features.*,
            attributes.* exclude (customer_id)

        from features
        left join attributes on features.customer_id = attributes.customer_id
    {%- else -%}
        select * from features
    {%- endif %}

)

select * from final
