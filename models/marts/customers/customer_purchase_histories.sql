-- The lifetime-value models' input as of the snapshot: per customer, repeat purchases x, the
-- time of the last one t_x and the age t (T in the BG/NBD papers), net of the lines the
-- cleaning drops (macros/value/purchase_histories_at.sql).
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

returned_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_product_return

),

snapshot_dates as (

    select max(snapshot_date) as as_of_date
    from customer_features

),

final as (

    {{ purchase_histories_at('snapshot_dates', 'orders', 'returned_lines') }}

)

select * from final
