-- An order is what one customer bought on one invoice: (invoice_id, customer_id). Invoice
-- numbers are not always unique to a customer (two stores numbering from 1, a merged export),
-- so an invoice with lines of several customers is several orders, never merged; such invoices
-- are counted (n_customers_on_invoice, clustering_runs) and warned about.
with

kept_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_kept

),

-- Returns tied to an order: product cancellation lines (as in customer_features) of the same
-- customer on the invoice number 'C' + the order's number, as shops that number a cancellation
-- after the invoice it cancels do. Cancellations numbered on their own (Online Retail's) name no
-- order: they count per customer and per product only.
cancelled_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_product_return

),

tied_returns as (

    select
        substring(invoice_id, 2) as invoice_id,
        customer_id,
        -sum(line_amount) as returned_value

    from cancelled_lines
    group by all

),

orders as (

    select
        invoice_id,
        customer_id,
        min(invoiced_at) as ordered_at,
        min(country) as country,
        -- No count(distinct stock_code): nothing downstream read it, and it was three quarters
        -- of this model's time (a distinct set per invoice, 15M invoices at 2M customers).
        count(*) as n_lines,
        sum(quantity) as n_items,
        sum(line_amount) as order_value

    from kept_lines
    group by invoice_id, customer_id

),

final as (

    select
        orders.invoice_id,
        orders.customer_id,
        orders.ordered_at,
        cast(orders.ordered_at as date) as order_date,
        orders.country,
        orders.n_lines,
        orders.n_items,
        orders.order_value,
        coalesce(tied_returns.returned_value, 0) as returned_value,
        orders.order_value - coalesce(tied_returns.returned_value, 0) as net_order_value,
        count(*) over (partition by orders.invoice_id) as n_customers_on_invoice

    from orders
    left join tied_returns
        on
            orders.invoice_id = tied_returns.invoice_id
            and orders.customer_id = tied_returns.customer_id

)

select * from final
