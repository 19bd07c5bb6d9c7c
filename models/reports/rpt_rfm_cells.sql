-- The RFM grid: customers and revenue per R x F cell, counted here rather than in the report.
with

customer_rfm_segments as (

    select * from {{ ref('customer_rfm_segments') }}

),

cells as (

    select
        r_score,
        f_score,
        count(*) as customers,
        sum(monetary) as revenue,
        -- Each (R, F) cell maps to one RFM segment (seeds/rfm_segment_map.csv).
        any_value(rfm_segment_label) as rfm_segment_label

    from customer_rfm_segments
    group by r_score, f_score

),

final as (

    select
        r_score,
        f_score,
        customers,
        revenue,
        rfm_segment_label

    from cells

)

select * from final
