-- The report's searchable table: the top customers of each segment by predicted value (then
-- net spend, then id), at most var report_top_customers per segment, so the page stays small
-- however many customers there are.
with

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

ranked as (

    select
        segment_id,
        segment_name,
        customer_id,
        country,
        recency_days,
        frequency,
        net_monetary,
        p_alive,
        predicted_clv,
        value_tier,
        suppression_reason,
        row_number() over (
            partition by segment_id
            order by predicted_clv desc nulls last, net_monetary desc, customer_id asc
        ) as rank_in_segment

    from customer_segments

),

final as (

    select * from ranked
    where rank_in_segment <= {{ var('report_top_customers') }}

)

select * from final
