-- The monthly activity chart (revenue, orders, active customers; partial months hollow) and
-- the partial months the cohort chart names.
with

monthly_activity as (

    select * from {{ ref('monthly_activity') }}

),

final as (

    select
        activity_month,
        revenue,
        n_orders,
        n_active_customers,
        n_new_customers,
        is_complete_month

    from monthly_activity

)

select * from final
