-- One row per (customer, product) a customer bought: the date of the first purchase and the
-- number of the customer's orders with the product. Distinct products as of any date
-- (customer_features, customer_segment_history) and orders and customers per product
-- (product_sales) are counts of these pairs: each model grouped the kept lines by them itself
-- before, three passes over every kept line instead of one.
with

kept_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_kept

),

-- An order is (invoice, customer): a product on several lines of one order counts once.
product_orders as (

    select
        customer_id,
        stock_code,
        invoice_id,
        min(cast(invoiced_at as date)) as purchase_date

    from kept_lines
    group by customer_id, stock_code, invoice_id

),

final as (

    select
        customer_id,
        stock_code,
        min(purchase_date) as first_purchase_date,
        count(*) as n_orders

    from product_orders
    group by customer_id, stock_code

)

select * from final
