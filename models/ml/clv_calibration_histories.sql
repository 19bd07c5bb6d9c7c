-- The validation's input: the same histories as of a calibration cut-off, and what each of
-- those customers then did in the holdout period from the cut-off to the snapshot.
{%- set days_per_unit = clv_days_per_unit() %}

with

histories as (

    select * from {{ ref('customer_purchase_histories') }}

),

orders as {{ not_materialized() }} (

    select * from {{ ref('int_orders_aggregated') }}

),

returned_lines as {{ not_materialized() }} (

    select * from {{ ref('int_transaction_lines_classified') }}
    where is_product_return

),

history_spans as (

    select
        max(as_of_date) as snapshot_date,
        min(first_purchase_date) as first_purchase_date

    from histories

),

-- The var clv_calibration_end, else the snapshot minus the horizon, or the middle of the
-- history when that is shorter than twice the horizon.
cutoffs as (

    select
        {% if var('clv_calibration_end') -%}
            cast({{ sql_string(var('clv_calibration_end')) }} as date) as as_of_date,
        {%- else -%}
            {{ add_days(
                'snapshot_date',
                '-least(' ~ var('clv_horizon_days') ~ ', floor('
                ~ days_between('first_purchase_date', 'snapshot_date') ~ ' / 2))'
            ) }} as as_of_date,
        {%- endif %}
        snapshot_date as holdout_end

    from history_spans

),

calibration as (

    {{ purchase_histories_at('cutoffs', 'orders', 'returned_lines') }}

),

-- Purchases are days with an order, as in the histories.
holdout_purchases as (

    select
        orders.customer_id,
        count(distinct orders.order_date) as holdout_purchases,
        sum(orders.order_value) as holdout_gross_value

    from orders
    inner join cutoffs
        on
            orders.order_date >= cutoffs.as_of_date
            and orders.order_date < cutoffs.holdout_end
    group by orders.customer_id

),

holdout_returns as (

    select
        returned_lines.customer_id,
        -sum(returned_lines.line_amount) as holdout_returned_value

    from returned_lines
    inner join cutoffs
        on
            cast(returned_lines.invoiced_at as date) >= cutoffs.as_of_date
            and cast(returned_lines.invoiced_at as date) < cutoffs.holdout_end
    group by returned_lines.customer_id

),

final as (

    select
        calibration.*,
        cutoffs.holdout_end,
        cast({{ days_between('cutoffs.as_of_date', 'cutoffs.holdout_end') }} as double)
        / {{ days_per_unit }} as holdout_length,
        coalesce(holdout_purchases.holdout_purchases, 0) as holdout_purchases,
        -- Net of the holdout's returns, spread over its purchases in proportion to value (in
        -- doubles: Spark would divide the decimals to 6 places).
        {%- if var('monetary_basis') == 'gross' %}
            cast(holdout_purchases.holdout_gross_value as double)
            / holdout_purchases.holdout_purchases
        {%- else %}
            cast(greatest(
                holdout_purchases.holdout_gross_value
                - coalesce(holdout_returns.holdout_returned_value, 0),
                0
            ) as double) / holdout_purchases.holdout_purchases
        {%- endif %} as holdout_mean_value

    from calibration
    cross join cutoffs
    left join holdout_purchases on calibration.customer_id = holdout_purchases.customer_id
    left join holdout_returns on calibration.customer_id = holdout_returns.customer_id

)

select * from final
