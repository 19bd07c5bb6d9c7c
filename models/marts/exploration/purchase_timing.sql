with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

final as (

    select
        {{ iso_weekday('ordered_at') }} as iso_weekday,
        {{ weekday_name('ordered_at') }} as weekday_name,
        hour(ordered_at) as hour_of_day,
        count(*) as n_orders,
        count(distinct customer_id) as n_customers,
        round(sum(order_value), 2) as revenue

    from orders
    group by all

)

select * from final
