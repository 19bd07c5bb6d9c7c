-- An invoice number with kept lines of more than one customer (reused numbering: two stores
-- counting from 1, a merged export). Each customer's lines are an order of their own, never
-- merged into another customer's; warn with how many, so the reuse is seen. clustering_runs
-- records the count too.
{{ config(severity='warn') }}

with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

)

select
    count(distinct invoice_id) as n_shared_invoices,
    min(invoice_id) as example_invoice_id,
    max(n_customers_on_invoice) as max_customers_on_one_invoice
from orders
where n_customers_on_invoice > 1
having count(*) > 0
