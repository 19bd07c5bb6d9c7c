with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

first_orders as (

    select
        customer_id,
        date_trunc('month', min(order_date)) as first_order_month

    from orders
    group by customer_id

),

monthly as (

    select
        cast(date_trunc('month', orders.order_date) as date) as activity_month,
        count(*) as n_orders,
        count(distinct orders.customer_id) as n_active_customers,
        count(distinct orders.customer_id) filter (
            where date_trunc('month', orders.order_date) = first_orders.first_order_month
        ) as n_new_customers,
        sum(orders.order_value) as revenue

    from orders
    inner join first_orders on orders.customer_id = first_orders.customer_id
    group by all

),

final as (

    select
        activity_month,
        round(revenue, 2) as revenue,
        n_orders,
        n_active_customers,
        n_new_customers,
        round(revenue / n_orders, 2) as average_order_value

    from monthly

)

select * from final
order by activity_month
