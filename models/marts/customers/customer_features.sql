{%- set attributes_path = var('customer_attributes_path') -%}
{%- set feature_columns = [
    'snapshot_date', 'first_order_date', 'last_order_date', 'recency_days', 'frequency',
    'monetary', 'gross_monetary', 'net_monetary', 'tenure_days', 'average_order_value', 'average_items_per_order',
    'distinct_products', 'mean_days_between_orders', 'median_days_between_orders',
    'returned_value', 'return_rate', 'share_of_orders_last_90_days', 'weekend_share_of_orders',
    'mean_order_hour', 'preferred_order_hour', 'main_country',
] -%}

{#- A snapshot_date var before every kept order leaves no customer: say so, naming it; one far
    after the data makes every recency long: warn. -#}
{%- if execute and var('snapshot_date') and model.resource_type != 'unit_test' -%}
    {%- set span = run_query(
        "select cast(min(order_date) as varchar), cast(max(order_date) as varchar), "
        ~ days_between('max(order_date)', "cast(" ~ sql_string(var('snapshot_date')) ~ " as date)")
        ~ " from " ~ ref('int_orders_aggregated')
    ) -%}
    {%- set first_order, last_order, days_after = span.rows[0] -%}
    {%- if first_order is none or var('snapshot_date') | string <= first_order -%}
        {{ exceptions.raise_compiler_error(
            "snapshot_date " ~ var('snapshot_date') ~ " is on or before the first kept order ("
            ~ (first_order or 'no kept orders') ~ "): no customer has an order before it. Set "
            ~ "it after " ~ first_order ~ ", or leave it unset (the day after the last order, "
            ~ last_order ~ ")") }}
    {%- elif days_after > var('snapshot_after_data_warn_days') -%}
        {{ exceptions.warn(
            "snapshot_date " ~ var('snapshot_date') ~ " is " ~ days_after ~ " days after the last "
            ~ "kept order (" ~ last_order ~ "): every customer's recency includes those days "
            ~ "without data. Leave snapshot_date unset to use the day after the last order") }}
    {%- endif -%}
{%- endif %}

with

-- Read twice (the snapshot date and the features): re-read rather than copied.
orders as {{ not_materialized() }} (

    select * from {{ ref('int_orders_aggregated') }}

),

customer_products as (

    select * from {{ ref('int_customer_products_aggregated') }}

),

returned_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_product_return

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

    {{ customer_features_at('snapshot_dates', 'orders', 'customer_products', 'returned_lines') }}

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
        left join attributes
            on features.customer_id = cast(attributes.customer_id as {{ customer_id_type() }})
    {%- else -%}
        select * from features
    {%- endif %}

)

select * from final
