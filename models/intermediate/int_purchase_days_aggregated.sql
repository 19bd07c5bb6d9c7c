-- A purchase is a day with at least one kept order: the lifetime-value models count repeat
-- purchases in days, as the BG/NBD literature does, so two invoices of one customer on the same
-- day (a forgotten item, a split basket) are one purchase and their values are summed.
with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

final as (

    select
        customer_id,
        order_date as purchase_date,
        count(*) as n_orders,
        sum(order_value) as purchase_value

    from orders
    group by customer_id, order_date

)

select * from final
