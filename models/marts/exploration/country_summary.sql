with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

-- Product returns (as in customer_features), by the country on the cancellation line.
returned_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_product_return

),

returns_by_country as (

    select
        coalesce(country, 'Unknown') as country,
        -sum(line_amount) as returned_value

    from returned_lines
    group by all

),

by_country as (

    select
        coalesce(country, 'Unknown') as country,
        count(distinct customer_id) as n_customers,
        count(*) as n_orders,
        sum(order_value) as revenue

    from orders
    group by all

),

-- Every country with kept orders or returns: returns from a country without a kept order
-- still count.
sold_and_returned as (

    select
        coalesce(by_country.country, returns_by_country.country) as country,
        coalesce(by_country.n_customers, 0) as n_customers,
        coalesce(by_country.n_orders, 0) as n_orders,
        coalesce(by_country.revenue, 0) as revenue,
        coalesce(returns_by_country.returned_value, 0) as returned_value

    from by_country
    full outer join returns_by_country on by_country.country = returns_by_country.country

),

final as (

    select
        country,
        n_customers,
        n_orders,
        round(revenue, 2) as revenue,
        round(returned_value, 2) as returned_value,
        round(revenue - returned_value, 2) as net_revenue,
        revenue / sum(revenue) over () as share_of_revenue,
        n_customers / sum(n_customers) over () as share_of_customers,
        row_number() over (order by revenue desc, country asc) as revenue_rank

    from sold_and_returned

)

select * from final
