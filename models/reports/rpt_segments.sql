-- The segments, one row each in cluster order: the summary's table of segments, the colour of
-- each segment in every chart, and the shares of customers and revenue chart.
with

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

),

final as (

    select
        cluster_id,
        segment_name,
        segment_description,
        recommended_action,
        n_customers,
        share_of_customers,
        share_of_revenue

    from segment_profiles

)

select * from final
