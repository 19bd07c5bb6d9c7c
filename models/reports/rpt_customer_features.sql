-- The feature charts: the recency, frequency and monetary histograms, and the Spearman
-- correlation matrix, which correlates every feature column here, in this order (the segment
-- heatmap orders its features the same way).
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

final as (

    select
        customer_id,
        recency_days,
        frequency,
        monetary,
        tenure_days,
        average_order_value,
        average_items_per_order,
        distinct_products,
        return_rate,
        share_of_orders_last_90_days,
        mean_order_hour

    from customer_features

)

select * from final
