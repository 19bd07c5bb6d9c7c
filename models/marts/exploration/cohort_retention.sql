with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

customer_months as (

    select distinct
        customer_id,
        {{ month_start('order_date') }} as activity_month

    from orders

),

cohorts as (

    select
        customer_id,
        min(activity_month) as cohort_month

    from customer_months
    group by customer_id

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_customers

    from cohorts
    group by cohort_month

),

activity as (

    select
        cohorts.cohort_month,
        {{ months_between('cohorts.cohort_month', 'customer_months.activity_month') }}
            as months_since_first_purchase,
        count(*) as n_active_customers

    from customer_months
    inner join cohorts on customer_months.customer_id = cohorts.customer_id
    group by all

),

final as (

    select
        activity.cohort_month,
        activity.months_since_first_purchase,
        cohort_sizes.cohort_customers,
        activity.n_active_customers,
        activity.n_active_customers / cohort_sizes.cohort_customers as retention_rate

    from activity
    inner join cohort_sizes on activity.cohort_month = cohort_sizes.cohort_month

)

select * from final
