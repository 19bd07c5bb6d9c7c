-- The elbow and the selection metrics charts: every candidate k of both algorithms.
with

cluster_model_selection as (

    select * from {{ ref('cluster_model_selection') }}

),

final as (

    select
        algorithm,
        k,
        inertia,
        silhouette,
        calinski_harabasz,
        davies_bouldin,
        stability,
        is_knee,
        is_selected,
        selection_rule,
        selection_reason,
        {{ var('stability_threshold') }} as stability_threshold

    from cluster_model_selection

)

select * from final
