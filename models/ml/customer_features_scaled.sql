-- The exact matrix the clustering models are fitted on: scaled in SQL from scaler_parameters,
-- so SQL scoring (assign_segment) transforms features with the same numbers.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

scaled as (

    {{ scale_features('customer_features') }}

)

select * from scaled
