-- Histogram of order value and of items per order, on fixed, roughly logarithmic buckets so
-- the long right tail stays readable.
with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

buckets (measure, bucket_order, lower_bound, upper_bound) as (

    values
    ('order_value', 1, 0, 10),
    ('order_value', 2, 10, 20),
    ('order_value', 3, 20, 50),
    ('order_value', 4, 50, 100),
    ('order_value', 5, 100, 200),
    ('order_value', 6, 200, 500),
    ('order_value', 7, 500, 1000),
    ('order_value', 8, 1000, 2000),
    ('order_value', 9, 2000, 5000),
    ('order_value', 10, 5000, null),
    ('items_per_order', 1, 0, 10),
    ('items_per_order', 2, 10, 25),
    ('items_per_order', 3, 25, 50),
    ('items_per_order', 4, 50, 100),
    ('items_per_order', 5, 100, 250),
    ('items_per_order', 6, 250, 500),
    ('items_per_order', 7, 500, 1000),
    ('items_per_order', 8, 1000, 2500),
    ('items_per_order', 9, 2500, null)

),

measured as (

    select
        'order_value' as measure,
        order_value as measured_value
    from orders

    union all

    select
        'items_per_order' as measure,
        n_items as measured_value
    from orders

),

counted as (

    select
        buckets.measure,
        buckets.bucket_order,
        buckets.lower_bound,
        buckets.upper_bound,
        count(measured.measured_value) as n_orders

    from buckets
    left join measured
        on
            buckets.measure = measured.measure
            and buckets.lower_bound <= measured.measured_value
            and (buckets.upper_bound is null or buckets.upper_bound > measured.measured_value)
    group by all

),

final as (

    select
        measure,
        bucket_order,
        case
            when upper_bound is null then cast(lower_bound as {{ dbt.type_string() }}) || '+'
            else
                cast(lower_bound as {{ dbt.type_string() }})
                || '-'
                || cast(upper_bound as {{ dbt.type_string() }})
        end as bucket_label,
        lower_bound,
        upper_bound,
        n_orders,
        n_orders / sum(n_orders) over (partition by measure) as share_of_orders

    from counted

)

select * from final
