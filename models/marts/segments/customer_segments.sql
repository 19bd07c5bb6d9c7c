-- The table users query: one row per customer with RFM, the k-means segment and its name.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

rfm as (

    select * from {{ ref('customer_rfm_segments') }}

),

customer_clusters as (

    select * from {{ ref('customer_clusters') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

customer_value as (

    select * from {{ ref('customer_value') }}

),

customer_rule_segments as (

    select * from {{ ref('customer_rule_segments') }}

),

outlier_thresholds as (

    select
        cluster_id,
        percentile_cont({{ var('outlier_percentile') }}) within group (
            order by distance_to_centroid
        ) as outlier_distance

    from customer_clusters
    group by cluster_id

),

joined as (

    select
        customer_features.customer_id,
        customer_features.snapshot_date,
        customer_features.recency_days,
        customer_features.frequency,
        customer_features.monetary,
        customer_features.net_monetary,
        customer_features.return_rate,
        rfm.r_score,
        rfm.f_score,
        rfm.m_score,
        rfm.rfm_segment,
        customer_clusters.cluster_id,
        segment_names.segment_id,
        segment_names.segment_name,
        customer_clusters.hierarchical_cluster_id,
        customer_clusters.distance_to_centroid,
        customer_clusters.distance_to_centroid > outlier_thresholds.outlier_distance
            as is_outlier,
        customer_features.main_country as country,
        customer_value.p_alive,
        customer_value.churn_risk,
        customer_value.predicted_clv,
        customer_value.value_tier,
        customer_rule_segments.rule_id,
        customer_rule_segments.rule_cluster_id

    from customer_features
    inner join rfm on customer_features.customer_id = rfm.customer_id
    inner join customer_clusters
        on customer_features.customer_id = customer_clusters.customer_id
    inner join segment_names on customer_clusters.cluster_id = segment_names.cluster_id
    inner join outlier_thresholds
        on customer_clusters.cluster_id = outlier_thresholds.cluster_id
    inner join customer_value on customer_features.customer_id = customer_value.customer_id
    inner join customer_rule_segments
        on customer_features.customer_id = customer_rule_segments.customer_id

),

-- Who is left out of the audiences (the analyses that pick customers to contact), and why:
-- the first reason that applies.
final as (

    select
        customer_id,
        snapshot_date,
        recency_days,
        frequency,
        monetary,
        net_monetary,
        r_score,
        f_score,
        m_score,
        rfm_segment,
        cluster_id,
        segment_id,
        segment_name,
        hierarchical_cluster_id,
        distance_to_centroid,
        is_outlier,
        country,
        p_alive,
        churn_risk,
        predicted_clv,
        value_tier,
        rule_id,
        rule_cluster_id,
        case
            when net_monetary <= 0 then 'returned_everything'
            when return_rate > {{ var('audience_max_return_rate') }} then 'high_return_rate'
            when is_outlier then 'outlier'
        end as suppression_reason

    from joined

)

select * from final
