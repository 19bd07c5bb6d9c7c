-- What drives the scatter's two axes: the correlation of each clustering feature (scaled, as
-- the model saw it) with each principal component, over every customer. The chart names the
-- strongest in words on its axes. A feature or an axis without spread has no correlation.
with

customer_features_scaled as (

    select * from {{ ref('customer_features_scaled') }}

),

customer_clusters as (

    select * from {{ ref('customer_clusters') }}

),

-- Long form: one row per customer and clustering feature.
feature_values as (

    {{ unpivot_columns(
        'customer_features_scaled', var('clustering_features'), 'feature', 'feature_value'
    ) }}

),

correlations as (

    select
        feature_values.feature,
        corr(feature_values.feature_value, customer_clusters.pca_1) as axis_1,
        corr(feature_values.feature_value, customer_clusters.pca_2) as axis_2

    from feature_values
    inner join customer_clusters on feature_values.customer_id = customer_clusters.customer_id
    group by feature_values.feature

),

final as (

    select
        1 as axis,
        feature,
        axis_1 as axis_correlation

    from correlations

    union all

    select
        2 as axis,
        feature,
        axis_2 as axis_correlation

    from correlations

)

select * from final
