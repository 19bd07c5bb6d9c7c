with

-- The kept lines are imported twice rather than shared: DuckDB materialises a CTE read twice
-- (a copy of every kept line).
kept_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_kept

),

described_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_kept and product_description is not null

),

-- A code can carry several descriptions; show its most used one (ties: alphabetical).
description_counts as (

    select
        stock_code,
        product_description,
        count(*) as n_lines

    from described_lines
    group by all

),

descriptions as (

    select
        stock_code,
        product_description,
        row_number() over (
            partition by stock_code
            order by n_lines desc, product_description asc
        ) as description_rank

    from description_counts

),

by_product as (

    select
        stock_code,
        sum(line_amount) as revenue,
        sum(quantity) as units,
        -- An order is (invoice, customer): invoice numbers may be reused by customers.
        {{ count_distinct_tuple(['invoice_id', 'customer_id']) }} as n_orders,
        count(distinct customer_id) as n_customers

    from kept_lines
    group by stock_code

),

final as (

    select
        by_product.stock_code,
        descriptions.product_description,
        round(by_product.revenue, 2) as revenue,
        by_product.units,
        by_product.n_orders,
        by_product.n_customers,
        row_number() over (
            order by by_product.revenue desc, by_product.stock_code asc
        ) as revenue_rank,
        row_number() over (
            order by by_product.n_customers desc, by_product.stock_code asc
        ) as customer_rank

    from by_product
    left join descriptions
        on
            by_product.stock_code = descriptions.stock_code
            and descriptions.description_rank = 1

)

select * from final
order by revenue_rank
