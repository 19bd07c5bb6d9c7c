-- P(alive) in SQL alone (the bgnbd_p_alive macro on clv_model_parameters) must equal the
-- Python value of every customer in customer_value.
with

histories as (

    select * from {{ ref('customer_purchase_histories') }}

),

clv_model_parameters as (

    select * from {{ ref('clv_model_parameters') }}

),

customer_value as (

    select * from {{ ref('customer_value') }}

),

computed_in_sql as (

    {{ bgnbd_p_alive('histories', 'clv_model_parameters') }}

)

select
    customer_value.customer_id,
    customer_value.p_alive as python_p_alive,
    computed_in_sql.p_alive as sql_p_alive

from customer_value
full outer join computed_in_sql on customer_value.customer_id = computed_in_sql.customer_id
where
    (customer_value.p_alive is null) != (computed_in_sql.p_alive is null)
    or abs(customer_value.p_alive - computed_in_sql.p_alive) > 1e-9
    or customer_value.customer_id is null
    or computed_in_sql.customer_id is null
