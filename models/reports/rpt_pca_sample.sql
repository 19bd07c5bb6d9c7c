-- The PCA scatter: a fixed sample of customers on the first two principal components, the
-- first in the order of a hash of their id (the same customers on every build of the same
-- data, spread over the id range), with the total it was drawn from.
{%- set sample_size = 5000 %}

with

customer_clusters as (

    select * from {{ ref('customer_clusters') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

hash_ordered as (

    select
        customer_clusters.customer_id,
        customer_clusters.distance_to_centroid,
        customer_clusters.pca_1,
        customer_clusters.pca_2,
        segment_names.segment_name,
        count(*) over () as n_customers,
        row_number() over (
            order by hash(customer_clusters.customer_id), customer_clusters.customer_id
        ) as draw_order

    from customer_clusters
    inner join segment_names on customer_clusters.cluster_id = segment_names.cluster_id

),

final as (

    select * from hash_ordered
    where draw_order <= {{ sample_size }}

)

select * from final
