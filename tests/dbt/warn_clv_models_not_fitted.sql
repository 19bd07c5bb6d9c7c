-- Thin or odd data (too short a history, too few repeat customers, a fit that did not
-- converge) leaves the lifetime values null, with the reason in clv_model_parameters: warn,
-- do not fail; the segmentation builds either way.
{{ config(severity='warn') }}

with

clv_model_parameters as (

    select * from {{ ref('clv_model_parameters') }}

)

select distinct
    fit,
    model,
    null_reason

from clv_model_parameters
where null_reason is not null
