-- One row per customer: what the lifetime-value models expect of them over the next
-- clv_horizon_days (models/marts/value/_value.md explains each figure and when to trust it).
with

histories as (

    select * from {{ ref('customer_purchase_histories') }}

),

predictions as (

    select * from {{ ref('clv_predictions') }}

),

clv_model_parameters as (

    select * from {{ ref('clv_model_parameters') }}

),

-- Why the values are null, when they are: the snapshot fit's reasons.
fit_reasons as (

    select
        max(null_reason) filter (where model = 'bg_nbd') as purchases_reason,
        max(null_reason) filter (where model = 'gamma_gamma') as spend_reason

    from clv_model_parameters
    where fit = 'snapshot'

),

joined as (

    select
        histories.customer_id,
        histories.as_of_date as snapshot_date,
        histories.time_unit,
        histories.n_purchases,
        histories.x,
        histories.t_x,
        histories.t,
        histories.net_value,
        predictions.p_alive,
        1 - predictions.p_alive as churn_risk,
        predictions.expected_purchases,
        predictions.discounted_purchases,
        predictions.expected_order_value,
        predictions.predicted_clv,
        (1 - predictions.p_alive) * histories.net_value as value_at_risk,
        case
            when predictions.p_alive is null then fit_reasons.purchases_reason
            when predictions.predicted_clv is null then fit_reasons.spend_reason
        end as null_reason

    from histories
    inner join predictions on histories.customer_id = predictions.customer_id
    cross join fit_reasons

),

-- Tiers by rank of predicted CLV among the customers with a positive one.
ranked as (

    select
        *,
        percent_rank() over (
            partition by predicted_clv > 0 order by predicted_clv desc
        ) as clv_rank

    from joined

),

final as (

    select
        customer_id,
        snapshot_date,
        time_unit,
        n_purchases,
        x,
        t_x,
        t,
        net_value,
        p_alive,
        churn_risk,
        expected_purchases,
        discounted_purchases,
        expected_order_value,
        predicted_clv,
        value_at_risk,
        case
            when predicted_clv is null then null
            when predicted_clv <= 0 then 'none'
            when clv_rank < 0.2 then 'high'
            when clv_rank < 0.5 then 'medium'
            else 'low'
        end as value_tier,
        {{ var('clv_horizon_days') }} as horizon_days,
        null_reason

    from ranked

)

select * from final
