-- Orders dated on or after snapshot_date (possible when the snapshot_date var is set) are not
-- in the customer features: features are as of the snapshot. Warn with how many, so nothing
-- is left out silently; clustering_runs records the count too.
{{ config(severity='warn') }}

with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

customer_features as (

    select * from {{ ref('customer_features') }}

),

snapshot as (

    select min(snapshot_date) as snapshot_date from customer_features

)

select
    count(*) as n_orders_after_snapshot,
    min(orders.order_date) as first_order_date_after_snapshot
from orders
cross join snapshot
where orders.order_date >= snapshot.snapshot_date
having count(*) > 0
