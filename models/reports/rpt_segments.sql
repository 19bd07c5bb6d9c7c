-- The segments, one row each in cluster order: the summary's cards of segments, the colour of
-- each segment in every chart, the shares of customers and revenue chart, the rule fidelity
-- and stability chart, and the segment filter of the top customers' table. The cards' churn
-- risk: the purchase model's chance of having stopped among repeat buyers (it counts every
-- one-time buyer as still buying), beside the shares of one-time and of lapsed customers.
with

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

),

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

customer_value as (

    select * from {{ ref('customer_value') }}

),

churn_signals as (

    select
        customer_segments.cluster_id,
        avg(case when customer_value.x = 0 then 1.0 else 0.0 end) as share_one_purchase,
        avg(
            case
                when customer_segments.recency_days >= {{ var('lapsed_after_days') }} then 1.0
                else 0.0
            end
        ) as share_lapsed,
        avg(customer_value.churn_risk) filter (
            where customer_value.x > 0
        ) as mean_repeat_churn_risk

    from customer_segments
    inner join customer_value on customer_segments.customer_id = customer_value.customer_id
    group by customer_segments.cluster_id

),

final as (

    select
        segment_profiles.cluster_id,
        segment_profiles.segment_name,
        segment_profiles.segment_description,
        segment_profiles.recommended_action,
        segment_profiles.n_customers,
        segment_profiles.share_of_customers,
        segment_profiles.share_of_revenue,
        churn_signals.mean_repeat_churn_risk,
        churn_signals.share_one_purchase,
        churn_signals.share_lapsed,
        segment_profiles.predicted_clv,
        segment_profiles.share_of_predicted_clv,
        segment_profiles.mean_predicted_clv,
        segment_profiles.segment_rule,
        segment_profiles.has_own_rule,
        segment_profiles.segment_rule_recall,
        segment_profiles.segment_rule_precision,
        segment_profiles.rule_fidelity,
        segment_profiles.jaccard_stability,
        segment_profiles.stability_band

    from segment_profiles
    left join churn_signals on segment_profiles.cluster_id = churn_signals.cluster_id

)

select * from final
