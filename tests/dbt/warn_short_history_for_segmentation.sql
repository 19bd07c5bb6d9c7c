-- Under 90 days of order history, recency and frequency say little: warn, do not fail.
{{ config(severity='warn') }}

with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

)

select
    min(order_date) as first_order_date,
    max(order_date) as last_order_date
from orders
having {{ days_between('min(order_date)', 'max(order_date)') }} < 90
