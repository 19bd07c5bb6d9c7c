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

customer_products as (

    select * from {{ ref('int_customer_products_aggregated') }}

),

-- Returns of products, as in customer_features: cancellation lines of known customers, not
-- non-product codes (postage, discounts), not exact duplicates.
returned_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_product_return

),

returns_by_product as (

    select
        stock_code,
        -sum(quantity) as returned_units,
        -sum(line_amount) as returned_value

    from returned_lines
    group by stock_code

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

sales_by_product as (

    select
        stock_code,
        sum(line_amount) as revenue,
        sum(quantity) as units

    from kept_lines
    group by stock_code

),

-- Orders and customers per product from the (customer, product) pairs: exact distinct counts
-- over the kept lines were most of this model's time.
buyers_by_product as (

    select
        stock_code,
        -- An order is (invoice, customer): invoice numbers may be reused by customers.
        cast(sum(n_orders) as bigint) as n_orders,
        count(*) as n_customers

    from customer_products
    group by stock_code

),

by_product as (

    select
        sales_by_product.stock_code,
        sales_by_product.revenue,
        sales_by_product.units,
        buyers_by_product.n_orders,
        buyers_by_product.n_customers

    from sales_by_product
    inner join buyers_by_product on sales_by_product.stock_code = buyers_by_product.stock_code

),

-- Every product sold or returned: a return of a product not sold in the data (bought before it
-- starts) still counts, with revenue 0.
sold_and_returned as (

    select
        coalesce(by_product.stock_code, returns_by_product.stock_code) as stock_code,
        coalesce(by_product.revenue, 0) as revenue,
        coalesce(by_product.units, 0) as units,
        coalesce(by_product.n_orders, 0) as n_orders,
        coalesce(by_product.n_customers, 0) as n_customers,
        coalesce(returns_by_product.returned_units, 0) as returned_units,
        coalesce(returns_by_product.returned_value, 0) as returned_value

    from by_product
    full outer join returns_by_product on by_product.stock_code = returns_by_product.stock_code

),

final as (

    select
        sold_and_returned.stock_code,
        descriptions.product_description,
        round(sold_and_returned.revenue, 2) as revenue,
        sold_and_returned.units,
        sold_and_returned.returned_units,
        round(sold_and_returned.returned_value, 2) as returned_value,
        round(sold_and_returned.revenue - sold_and_returned.returned_value, 2) as net_revenue,
        sold_and_returned.n_orders,
        sold_and_returned.n_customers,
        row_number() over (
            order by sold_and_returned.revenue desc, sold_and_returned.stock_code asc
        ) as revenue_rank,
        row_number() over (
            order by
                sold_and_returned.revenue - sold_and_returned.returned_value desc,
                sold_and_returned.stock_code asc
        ) as net_revenue_rank,
        row_number() over (
            order by sold_and_returned.n_customers desc, sold_and_returned.stock_code asc
        ) as customer_rank

    from sold_and_returned
    left join descriptions
        on
            sold_and_returned.stock_code = descriptions.stock_code
            and descriptions.description_rank = 1

)

select * from final
