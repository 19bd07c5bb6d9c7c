-- The order value histogram: the order_value buckets of order_size_distribution.
with

order_size_distribution as (

    select * from {{ ref('order_size_distribution') }}

),

order_value_buckets as (

    select * from order_size_distribution
    where measure = 'order_value'

),

final as (

    select
        bucket_order,
        bucket_label,
        n_orders,
        share_of_orders

    from order_value_buckets

)

select * from final
