-- The calibration and holdout charts: clv_validation's rows, per measure and number of
-- calibration repeat purchases (0 to 6, 7+, and all), with why the calibration fit of the
-- measure's model is unusable when it is (the predictions are null then).
with

clv_validation as (

    select * from {{ ref('clv_validation') }}

),

clv_model_parameters as (

    select * from {{ ref('clv_model_parameters') }}

),

calibration_reasons as (

    select
        case model
            when 'bg_nbd' then 'repeat_purchases'
            when 'gamma_gamma' then 'mean_purchase_value'
        end as measure,
        max(null_reason) as null_reason

    from clv_model_parameters
    where fit = 'calibration'
    group by all

),

final as (

    select
        clv_validation.measure,
        clv_validation.calibration_purchases,
        clv_validation.bucket_order,
        clv_validation.customers,
        clv_validation.predicted_mean,
        clv_validation.actual_mean,
        clv_validation.predicted_total,
        clv_validation.actual_total,
        clv_validation.mean_absolute_error,
        clv_validation.correlation,
        clv_validation.calibration_end,
        clv_validation.holdout_end,
        clv_validation.holdout_length,
        clv_validation.time_unit,
        calibration_reasons.null_reason

    from clv_validation
    left join calibration_reasons on clv_validation.measure = calibration_reasons.measure

)

select * from final
