-- Quality of the selected model, one row per metric (cluster_id set for per-cluster values).
with

selection as (

    select * from {{ ref('selected_cluster_model') }}

),

silhouettes as (

    select * from {{ ref('customer_silhouettes') }}

),

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

segment_rule_tree as (

    select * from {{ ref('segment_rule_tree') }}

),

segment_stability as (

    select * from {{ ref('segment_stability') }}

),

kmeans_vs_hierarchical as (

    {{ partition_agreement('customer_segments', 'cluster_id', 'hierarchical_cluster_id') }}

),

kmeans_vs_rfm as (

    {{ partition_agreement('customer_segments', 'cluster_id', 'rfm_segment') }}

),

model_metrics (metric, metric_description) as (

    values
    ('k', 'number of clusters'),
    ('silhouette', 'mean silhouette of the sampled customers (-1..1, higher is better)'),
    ('share_negative_silhouette', 'share of sampled customers closer to another cluster'),
    ('inertia', 'within-cluster sum of squares, scaled units'),
    ('calinski_harabasz', 'Calinski-Harabasz index (higher is better)'),
    ('davies_bouldin', 'Davies-Bouldin index (lower is better)'),
    ('stability', 'mean adjusted Rand index of bootstrap refits (1 = always the same)'),
    ('ari_kmeans_vs_hierarchical', 'adjusted Rand index, k-means vs Ward clusters'),
    ('nmi_kmeans_vs_hierarchical', 'normalised mutual information, k-means vs Ward'),
    ('ari_kmeans_vs_rfm_segment', 'adjusted Rand index, k-means clusters vs RFM segments'),
    ('nmi_kmeans_vs_rfm_segment', 'normalised mutual information, k-means vs RFM segments'),
    ('rule_fidelity', 'share of customers the rounded segment rules put in their own segment'),
    ('rule_fidelity_unrounded', 'the same for the tree before its thresholds were rounded'),
    ('rule_count', 'number of segment rules (leaves of the tree)')

),

silhouette_summary as (

    select
        avg(silhouette) as silhouette,
        avg(cast(silhouette < 0 as double)) as share_negative_silhouette
    from silhouettes

),

rule_summary as (

    select
        avg(
            cast(
                coalesce(customer_segments.rule_cluster_id = customer_segments.cluster_id, false)
                as double
            )
        ) as rule_fidelity

    from customer_segments

),

rule_tree_summary as (

    select
        max(fidelity_unrounded) as rule_fidelity_unrounded,
        count(*) as rule_count

    from segment_rule_tree

),

model_values as (

    select
        model_metrics.metric,
        cast(null as bigint) as cluster_id,
        case model_metrics.metric
            when 'k' then cast(selection.k as double)
            when 'silhouette' then silhouette_summary.silhouette
            when 'share_negative_silhouette' then silhouette_summary.share_negative_silhouette
            when 'inertia' then selection.inertia
            when 'calinski_harabasz' then selection.calinski_harabasz
            when 'davies_bouldin' then selection.davies_bouldin
            when 'stability' then selection.stability
            when 'ari_kmeans_vs_hierarchical' then kmeans_vs_hierarchical.adjusted_rand_index
            when 'nmi_kmeans_vs_hierarchical'
                then kmeans_vs_hierarchical.normalized_mutual_information
            when 'ari_kmeans_vs_rfm_segment' then kmeans_vs_rfm.adjusted_rand_index
            when 'nmi_kmeans_vs_rfm_segment' then kmeans_vs_rfm.normalized_mutual_information
            when 'rule_fidelity' then rule_summary.rule_fidelity
            when 'rule_fidelity_unrounded' then rule_tree_summary.rule_fidelity_unrounded
            when 'rule_count' then cast(rule_tree_summary.rule_count as double)
        end as metric_value,
        model_metrics.metric_description

    from model_metrics
    cross join selection
    cross join silhouette_summary
    cross join kmeans_vs_hierarchical
    cross join kmeans_vs_rfm
    cross join rule_summary
    cross join rule_tree_summary

),

per_cluster as (

    select
        'silhouette' as metric,
        cluster_id,
        avg(silhouette) as metric_value,
        'mean silhouette of the cluster''s sampled customers' as metric_description
    from silhouettes
    group by cluster_id

    union all

    select
        'share_negative_silhouette' as metric,
        cluster_id,
        avg(cast(silhouette < 0 as double)) as metric_value,
        'share of the cluster''s sampled customers closer to another cluster'
            as metric_description
    from silhouettes
    group by cluster_id

    union all

    select
        'rule_fidelity' as metric,
        cluster_id,
        avg(cast(coalesce(rule_cluster_id = cluster_id, false) as double)) as metric_value,
        'share of the cluster''s customers its rules assign to it' as metric_description
    from customer_segments
    group by cluster_id

    union all

    select
        'jaccard_stability' as metric,
        cluster_id,
        mean_jaccard as metric_value,
        'mean Jaccard similarity with its best match in each bootstrap refit (clusterboot)'
            as metric_description
    from segment_stability

),

final as (

    select * from model_values
    union all
    select * from per_cluster

)

select * from final
