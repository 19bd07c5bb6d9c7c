with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

-- Product returns (as in customer_features), counted in the month they were made.
returned_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_product_return

),

monthly_returns as (

    select
        {{ month_start('invoiced_at') }} as activity_month,
        -sum(line_amount) as returned_value

    from returned_lines
    group by all

),

data_range as (

    select
        min(order_date) as first_order_date,
        max(order_date) as last_order_date

    from orders

),

first_orders as (

    select
        customer_id,
        {{ month_start('min(order_date)') }} as first_order_month

    from orders
    group by customer_id

),

monthly as (

    select
        {{ month_start('orders.order_date') }} as activity_month,
        count(*) as n_orders,
        count(distinct orders.customer_id) as n_active_customers,
        count(distinct orders.customer_id) filter (
            where {{ month_start('orders.order_date') }} = first_orders.first_order_month
        ) as n_new_customers,
        sum(orders.order_value) as revenue

    from orders
    inner join first_orders on orders.customer_id = first_orders.customer_id
    group by all

),

-- Every month with kept orders or returns: returns in a month without a kept order still
-- count.
sold_and_returned as (

    select
        coalesce(monthly.activity_month, monthly_returns.activity_month) as activity_month,
        coalesce(monthly.revenue, 0) as revenue,
        coalesce(monthly_returns.returned_value, 0) as returned_value,
        coalesce(monthly.n_orders, 0) as n_orders,
        coalesce(monthly.n_active_customers, 0) as n_active_customers,
        coalesce(monthly.n_new_customers, 0) as n_new_customers

    from monthly
    full outer join monthly_returns on monthly.activity_month = monthly_returns.activity_month

),

final as (

    select
        sold_and_returned.activity_month,
        round(sold_and_returned.revenue, 2) as revenue,
        round(sold_and_returned.returned_value, 2) as returned_value,
        round(sold_and_returned.revenue - sold_and_returned.returned_value, 2) as net_revenue,
        sold_and_returned.n_orders,
        sold_and_returned.n_active_customers,
        sold_and_returned.n_new_customers,
        round(sold_and_returned.revenue / nullif(sold_and_returned.n_orders, 0), 2)
            as average_order_value,
        -- The first and last months of the data may be cut short; say so rather than let a
        -- partial month read as a collapse.
        data_range.first_order_date <= sold_and_returned.activity_month
        and data_range.last_order_date >= last_day(sold_and_returned.activity_month)
            as is_complete_month

    from sold_and_returned
    cross join data_range

)

select * from final
