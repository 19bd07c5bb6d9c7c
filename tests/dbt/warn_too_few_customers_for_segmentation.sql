-- Segments from fewer than 100 customers are not meaningful: warn, do not fail.
{{ config(severity='warn') }}

with

customer_features as (

    select * from {{ ref('customer_features') }}

)

select count(*) as n_customers
from customer_features
having count(*) < 100
