-- The persisted model scores in SQL alone: assign_segment on customer_features must give every
-- customer the same cluster (and distance) as the Python model.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

scaler_parameters as (

    select * from {{ ref('scaler_parameters') }}

),

cluster_centroids as (

    select * from {{ ref('cluster_centroids') }}

),

scored_in_python as (

    select * from {{ ref('customer_clusters') }}

),

scored_in_sql as (

    {{ assign_segment('customer_features', 'scaler_parameters', 'cluster_centroids') }}

)

select
    scored_in_python.customer_id,
    scored_in_python.cluster_id as python_cluster_id,
    scored_in_sql.cluster_id as sql_cluster_id,
    scored_in_python.distance_to_centroid as python_distance,
    scored_in_sql.distance_to_centroid as sql_distance

from scored_in_python
full outer join scored_in_sql on scored_in_python.customer_id = scored_in_sql.customer_id
where
    scored_in_sql.cluster_id is distinct from scored_in_python.cluster_id
    or abs(scored_in_sql.distance_to_centroid - scored_in_python.distance_to_centroid) > 1e-9
