-- The exact matrix the clustering models are fitted on: scaled in SQL from scaler_parameters,
-- so SQL scoring (assign_segment) transforms features with the same numbers.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

scaler_parameters as (

    select * from {{ ref('scaler_parameters') }}

),

scaled as (

    {{ scale_features('customer_features', 'scaler_parameters') }}

)

select * from scaled
