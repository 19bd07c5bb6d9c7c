-- The dendrogram: the Ward linkage matrix (the chart draws its last merges).
with

hierarchy_linkage as (

    select * from {{ ref('hierarchy_linkage') }}

),

final as (

    select
        merge_order,
        left_child,
        right_child,
        distance,
        n_customers,
        n_leaves

    from hierarchy_linkage

)

select * from final
