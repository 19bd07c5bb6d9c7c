with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

-- Product returns (as in customer_features), by the country on the cancellation line.
returned_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where row_class = 'cancellation' and not is_non_product and not is_exact_duplicate

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

final as (

    select
        by_country.country,
        by_country.n_customers,
        by_country.n_orders,
        round(by_country.revenue, 2) as revenue,
        round(coalesce(returns_by_country.returned_value, 0), 2) as returned_value,
        round(by_country.revenue - coalesce(returns_by_country.returned_value, 0), 2)
            as net_revenue,
        by_country.revenue / sum(by_country.revenue) over () as share_of_revenue,
        by_country.n_customers / sum(by_country.n_customers) over () as share_of_customers,
        row_number() over (
            order by by_country.revenue desc, by_country.country asc
        ) as revenue_rank

    from by_country
    left join returns_by_country on by_country.country = returns_by_country.country

)

select * from final
order by revenue_rank
