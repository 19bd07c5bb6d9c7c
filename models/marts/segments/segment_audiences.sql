-- One row per customer, as the audience files (`make audiences`) write them: the stable segment,
-- its recommended action, the customer's lifetime value, and why a campaign should leave the
-- customer out. The flags are all kept; suppression_reason is the first that applies.
with

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

customer_features as (

    select * from {{ ref('customer_features') }}

),

flagged as (

    select
        customer_segments.customer_id,
        customer_segments.segment_id,
        customer_segments.segment_name,
        segment_names.recommended_action,
        customer_segments.p_alive,
        customer_segments.predicted_clv,
        customer_segments.net_monetary <= 0 as is_returned_everything,
        customer_features.return_rate > {{ var('audience_max_return_rate') }}
            as is_high_return_rate,
        customer_segments.is_outlier,
        customer_segments.recency_days >= {{ var('lapsed_after_days') }} as is_lapsed,
        customer_segments.suppression_reason

    from customer_segments
    inner join segment_names on customer_segments.cluster_id = segment_names.cluster_id
    inner join customer_features on customer_segments.customer_id = customer_features.customer_id

),

final as (

    select
        customer_id,
        segment_id,
        segment_name,
        recommended_action,
        p_alive,
        predicted_clv,
        is_returned_everything,
        is_high_return_rate,
        is_outlier,
        is_lapsed,
        coalesce(suppression_reason, case when is_lapsed then 'lapsed' end) as suppression_reason,
        coalesce(suppression_reason, case when is_lapsed then 'lapsed' end) is not null
            as is_suppressed

    from flagged

)

select * from final
