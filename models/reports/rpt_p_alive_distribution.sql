-- The P(alive) chart: customers per range of P(alive) and value tier (customer_value). The
-- ranges are finer near 1, where most customers are on a short history, and customers with
-- one purchase have their own bar: the model counts them alive (P(alive) = 1) by definition.
-- Every range and tier has a row, with 0 customers when none falls in it; customers without a
-- P(alive) (the model was not fitted) are in none.
with

customer_value as (

    select * from {{ ref('customer_value') }}

),

buckets (bucket_order, bucket_label, lower_bound, upper_bound, is_one_purchase) as (

    values
    (1, 'under 50%', 0.0, 0.5, false),
    (2, '50-80%', 0.5, 0.8, false),
    (3, '80-90%', 0.8, 0.9, false),
    (4, '90-95%', 0.9, 0.95, false),
    (5, '95-99%', 0.95, 0.99, false),
    (6, '99-99.9%', 0.99, 0.999, false),
    (7, '99.9% or more', 0.999, null, false),
    (8, 'one purchase so far', 1.0, 1.0, true)

),

tiers (tier_order, value_tier) as (

    values
    (1, 'high'),
    (2, 'medium'),
    (3, 'low'),
    (4, 'none'),
    (5, 'not computed')

),

customers as (

    select
        p_alive,
        x = 0 as is_one_purchase,
        coalesce(value_tier, 'not computed') as value_tier

    from customer_value
    where p_alive is not null

),

cells as (

    select
        buckets.bucket_order,
        buckets.bucket_label,
        buckets.lower_bound,
        buckets.upper_bound,
        buckets.is_one_purchase,
        tiers.tier_order,
        tiers.value_tier

    from buckets
    cross join tiers

),

counted as (

    select
        cells.bucket_order,
        cells.bucket_label,
        cells.lower_bound,
        cells.upper_bound,
        cells.is_one_purchase,
        cells.tier_order,
        cells.value_tier,
        count(customers.p_alive) as n_customers

    from cells
    left join customers
        on
            cells.value_tier = customers.value_tier
            and cells.is_one_purchase = customers.is_one_purchase
            and (
                cells.is_one_purchase
                or (
                    cells.lower_bound <= customers.p_alive
                    and (cells.upper_bound is null or cells.upper_bound > customers.p_alive)
                )
            )
    group by all

),

final as (

    select
        bucket_order,
        bucket_label,
        lower_bound,
        upper_bound,
        is_one_purchase,
        tier_order,
        value_tier,
        n_customers,
        n_customers / nullif(sum(n_customers) over (), 0) as share_of_customers

    from counted

)

select * from final
