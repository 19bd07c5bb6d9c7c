-- The segments, one row each in cluster order: the summary's table and cards of segments, the
-- colour of each segment in every chart, the shares of customers and revenue chart, and the
-- rule fidelity and stability chart, and the segment filter of the top customers' table.
with

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

),

final as (

    select
        cluster_id,
        segment_id,
        segment_name,
        segment_description,
        recommended_action,
        n_customers,
        share_of_customers,
        share_of_revenue,
        mean_p_alive,
        predicted_clv,
        share_of_predicted_clv,
        mean_predicted_clv,
        value_at_risk,
        segment_rule,
        has_own_rule,
        segment_rule_recall,
        segment_rule_precision,
        rule_fidelity,
        jaccard_stability,
        stability_band

    from segment_profiles

)

select * from final
