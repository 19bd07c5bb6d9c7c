-- One row per k-means segment: how reliably the bootstrap refits find it again (Hennig's
-- clusterboot). For each k-means refit at the selected k (stability_refits), the Jaccard
-- similarity between the segment and the refit cluster most like it, on the silhouette
-- sample; then the mean over the refits, and its band.
with

selection as (

    select * from {{ ref('selected_cluster_model') }}

),

stability_refits as (

    select * from {{ ref('stability_refits') }}

),

customer_clusters as (

    select * from {{ ref('customer_clusters') }}

),

selected_refits as (

    select
        stability_refits.run,
        stability_refits.customer_id,
        stability_refits.refit_cluster_id

    from stability_refits
    inner join selection on stability_refits.k = selection.k
    where stability_refits.algorithm = 'kmeans'

),

labelled as (

    select
        selected_refits.run,
        customer_clusters.cluster_id,
        selected_refits.refit_cluster_id

    from selected_refits
    inner join customer_clusters on selected_refits.customer_id = customer_clusters.customer_id

),

shared_counts as (

    select
        run,
        cluster_id,
        refit_cluster_id,
        count(*) as n_both

    from labelled
    group by run, cluster_id, refit_cluster_id

),

segment_sizes as (

    select
        run,
        cluster_id,
        count(*) as n_segment

    from labelled
    group by run, cluster_id

),

refit_sizes as (

    select
        run,
        refit_cluster_id,
        count(*) as n_refit

    from labelled
    group by run, refit_cluster_id

),

-- Jaccard = |both| / |either|; the best match is the refit cluster sharing the most of it
-- relative to their union.
best_matches as (

    select
        shared_counts.run,
        shared_counts.cluster_id,
        max(
            cast(shared_counts.n_both as double)
            / (segment_sizes.n_segment + refit_sizes.n_refit - shared_counts.n_both)
        ) as jaccard

    from shared_counts
    inner join segment_sizes
        on
            shared_counts.run = segment_sizes.run
            and shared_counts.cluster_id = segment_sizes.cluster_id
    inner join refit_sizes
        on
            shared_counts.run = refit_sizes.run
            and shared_counts.refit_cluster_id = refit_sizes.refit_cluster_id
    group by shared_counts.run, shared_counts.cluster_id

),

per_segment as (

    select
        best_matches.cluster_id,
        avg(best_matches.jaccard) as mean_jaccard,
        min(best_matches.jaccard) as min_jaccard,
        max(best_matches.jaccard) as max_jaccard,
        count(*) as n_refits,
        cast(sum(case when best_matches.jaccard > 0.75 then 1 else 0 end) as bigint)
            as n_recovered,
        cast(sum(case when best_matches.jaccard <= 0.5 then 1 else 0 end) as bigint)
            as n_dissolved,
        max(segment_sizes.n_segment) as n_sampled_customers

    from best_matches
    inner join segment_sizes
        on
            best_matches.run = segment_sizes.run
            and best_matches.cluster_id = segment_sizes.cluster_id
    group by best_matches.cluster_id

),

final as (

    select
        cluster_id,
        mean_jaccard,
        case
            when mean_jaccard > 0.85 then 'highly stable'
            when mean_jaccard >= 0.75 then 'stable'
            when mean_jaccard >= 0.6 then 'doubtful'
            else 'unstable'
        end as stability_band,
        min_jaccard,
        max_jaccard,
        n_refits,
        n_recovered,
        n_dissolved,
        n_sampled_customers

    from per_segment

)

select * from final
