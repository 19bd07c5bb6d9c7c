-- Score customers with the persisted model in SQL alone (no Python): scale their features with
-- scaler_parameters and take the nearest centre in cluster_centroids. Any relation with
-- customer_id and the clustering feature columns works, e.g. features of new customers
-- computed with the customer_features_at macro; the model's two tables are passed by name. Run:
--   .venv/bin/dbt show --select score_customers_in_sql --limit 20
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

scored as (

    {{ assign_segment('customer_features', 'scaler_parameters', 'cluster_centroids') }}

)

select * from scored
order by customer_id
