-- How well the lifetime-value models predict, as the literature checks them: fitted on the
-- orders before the calibration cut-off, their predictions for the holdout period (cut-off to
-- snapshot) against what each customer then did, by number of calibration repeat purchases.
with

calibration as (

    select * from {{ ref('clv_calibration_histories') }}

),

predictions as (

    select * from {{ ref('clv_holdout_predictions') }}

),

-- One row per customer and measure: repeat purchases for every calibration customer; the mean
-- purchase value for the repeat customers who bought again in the holdout.
compared as (

    select
        'repeat_purchases' as measure,
        calibration.customer_id,
        least(calibration.x, 7) as bucket_order,
        predictions.predicted_purchases as predicted,
        cast(calibration.holdout_purchases as double) as actual

    from calibration
    inner join predictions on calibration.customer_id = predictions.customer_id

    union all

    select
        'mean_purchase_value' as measure,
        calibration.customer_id,
        least(calibration.x, 7) as bucket_order,
        predictions.predicted_mean_value as predicted,
        calibration.holdout_mean_value as actual

    from calibration
    inner join predictions on calibration.customer_id = predictions.customer_id
    where calibration.x > 0 and calibration.holdout_purchases > 0

),

-- Per number of calibration purchases, and over all of them (rollup's subtotal without
-- bucket_order: calibration_purchases 'all', bucket_order 8; the grand total left out).
summaries as (

    select
        measure,
        case
            when grouping(bucket_order) = 1 then 'all'
            when bucket_order = 7 then '7+'
            else cast(bucket_order as string)
        end as calibration_purchases,
        case when grouping(bucket_order) = 1 then 8 else bucket_order end as bucket_order,
        count(*) as customers,
        avg(predicted) as predicted_mean,
        avg(actual) as actual_mean,
        sum(predicted) as predicted_total,
        sum(actual) as actual_total,
        avg(abs(predicted - actual)) as mean_absolute_error,
        corr(predicted, actual) as correlation  -- noqa: RF04

    from compared
    group by rollup(measure, bucket_order)
    having grouping(measure) = 0

),

periods as (

    select
        max(as_of_date) as calibration_end,
        max(holdout_end) as holdout_end,
        max(holdout_length) as holdout_length,
        max(time_unit) as time_unit

    from calibration

),

final as (

    select
        summaries.*,
        periods.calibration_end,
        periods.holdout_end,
        periods.holdout_length,
        periods.time_unit

    from summaries
    cross join periods

)

select * from final
