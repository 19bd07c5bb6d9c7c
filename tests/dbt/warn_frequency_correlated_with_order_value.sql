-- The Gamma-Gamma spend model assumes a customer's purchase values do not depend on how often
-- they buy: warn when the correlation between repeat purchases and mean purchase value of the
-- fitted customers is above the var clv_max_frequency_value_correlation.
{{ config(severity='warn') }}

with

clv_model_parameters as (

    select * from {{ ref('clv_model_parameters') }}

)

select distinct
    fit,
    frequency_value_correlation

from clv_model_parameters
where
    model = 'gamma_gamma'
    and abs(frequency_value_correlation) > {{ var('clv_max_frequency_value_correlation') }}
