-- The dendrogram's leaves: how many customers of each segment sit under each leaf of the Ward
-- tree (a customer, or a k-means micro-cluster above exact_ward_max_customers), so the chart
-- can show which segments each branch holds.
with

hierarchy_leaves as (

    select * from {{ ref('hierarchy_leaves') }}

),

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

leaf_segments as (

    select
        hierarchy_leaves.leaf_id,
        customer_segments.segment_name,
        count(*) as n_customers

    from hierarchy_leaves
    inner join customer_segments on hierarchy_leaves.customer_id = customer_segments.customer_id
    group by hierarchy_leaves.leaf_id, customer_segments.segment_name

),

final as (

    select
        leaf_id,
        segment_name,
        cast(n_customers as bigint) as n_customers

    from leaf_segments

)

select * from final
