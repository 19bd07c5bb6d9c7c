-- An order is what one customer bought on one invoice: (invoice_id, customer_id). Invoice
-- numbers are not always unique to a customer (two stores numbering from 1, a merged export),
-- so an invoice with lines of several customers is several orders, never merged; such invoices
-- are counted (n_customers_on_invoice, clustering_runs) and warned about.
with

kept_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_kept

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
        invoice_id,
        customer_id,
        ordered_at,
        cast(ordered_at as date) as order_date,
        country,
        n_lines,
        n_items,
        order_value,
        count(*) over (partition by invoice_id) as n_customers_on_invoice

    from orders

)

select * from final
