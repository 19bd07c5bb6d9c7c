-- The one place that says which model was chosen: the k-means row of cluster_model_selection
-- marked is_selected (k, the rule and reason that chose it, its metrics). cluster_evaluation and
-- clustering_runs read k from here. A view: it costs nothing, and its tests skip cleanly when an
-- upstream model fails (tests of an ephemeral model report an error skip instead).
{{ config(materialized='view') }}

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
        n_customers,
        silhouette_sample_size,
        hierarchical_method,
        sklearn_version

    from cluster_model_selection
    where is_selected and algorithm = 'kmeans'

)

select * from final
