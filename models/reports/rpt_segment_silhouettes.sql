-- The silhouette (knife) plot: each sampled customer's silhouette, with the segment's name.
with

customer_silhouettes as (

    select * from {{ ref('customer_silhouettes') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

final as (

    select
        customer_silhouettes.customer_id,
        customer_silhouettes.cluster_id,
        customer_silhouettes.silhouette,
        segment_names.segment_name

    from customer_silhouettes
    inner join segment_names on customer_silhouettes.cluster_id = segment_names.cluster_id

)

select * from final
