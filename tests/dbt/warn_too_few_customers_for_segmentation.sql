-- Segments from fewer than 100 customers are not meaningful: warn, do not fail.
{{ config(severity='warn') }}

select count(*) as n_customers
from {{ ref('customer_features') }}
having count(*) < 100
