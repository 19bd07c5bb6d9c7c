-- The value-ahead chart per segment, in cluster order: predicted lifetime value and value at
-- risk (segment_profiles), with each segment's share of the total of both.
with

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

),

final as (

    select
        cluster_id,
        segment_name,
        n_customers,
        mean_p_alive,
        predicted_clv,
        mean_predicted_clv,
        share_of_predicted_clv,
        value_at_risk,
        value_at_risk / nullif(sum(value_at_risk) over (), 0) as share_of_value_at_risk

    from segment_profiles

)

select * from final
