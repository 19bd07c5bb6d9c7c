with

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

counted as (

    select
        cluster_id,
        segment_name,
        rfm_segment,
        count(*) as n_customers

    from customer_segments
    group by all

),

final as (

    select
        counted.cluster_id,
        counted.segment_name,
        counted.rfm_segment,
        rfm_segments.segment_label as rfm_segment_label,
        counted.n_customers,
        counted.n_customers / sum(counted.n_customers) over (partition by counted.cluster_id)
            as share_of_cluster,
        counted.n_customers / sum(counted.n_customers) over (partition by counted.rfm_segment)
            as share_of_rfm_segment

    from counted
    inner join rfm_segments on counted.rfm_segment = rfm_segments.rfm_segment

)

select * from final
