-- The segment sizes over time chart: customers per segment at each snapshot date, counted here
-- rather than in the report.
with

customer_segment_history as (

    select * from {{ ref('customer_segment_history') }}

),

final as (

    select
        snapshot_date,
        segment_name,
        count(*) as customers

    from customer_segment_history
    group by snapshot_date, segment_name

)

select * from final
