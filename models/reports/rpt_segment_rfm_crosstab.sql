-- The k-means segments against RFM segments heatmap: customers in both, with the RFM
-- segments' order (seeds/rfm_segments.csv) for the axis.
with

segment_rfm_crosstab as (

    select * from {{ ref('segment_rfm_crosstab') }}

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

final as (

    select
        segment_rfm_crosstab.cluster_id,
        segment_rfm_crosstab.segment_name,
        segment_rfm_crosstab.rfm_segment,
        segment_rfm_crosstab.rfm_segment_label,
        rfm_segments.segment_order as rfm_segment_order,
        segment_rfm_crosstab.n_customers,
        segment_rfm_crosstab.share_of_cluster

    from segment_rfm_crosstab
    inner join rfm_segments on segment_rfm_crosstab.rfm_segment = rfm_segments.rfm_segment

)

select * from final
