with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

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
        country,
        n_customers,
        n_orders,
        round(revenue, 2) as revenue,
        revenue / sum(revenue) over () as share_of_revenue,
        n_customers / sum(n_customers) over () as share_of_customers,
        row_number() over (order by revenue desc, country asc) as revenue_rank

    from by_country

)

select * from final
order by revenue_rank
