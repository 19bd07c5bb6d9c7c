-- One row per build, kept across builds (incremental): what was clustered, how, and how well.
{{
    config(
        materialized='incremental',
        unique_key='invocation_id',
        on_schema_change='append_new_columns',
    )
}}

with

selection as (

    select * from {{ ref('selected_cluster_model') }}

),

evaluation as (

    select * from {{ ref('cluster_evaluation') }}
    where cluster_id is null

),

audit as (

    select * from {{ ref('data_quality_audit') }}

),

customer_features as (

    select * from {{ ref('customer_features') }}

),

scaler_parameters as (

    select * from {{ ref('scaler_parameters') }}

),

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

line_counts as (

    select
        cast(sum(n_rows) as bigint) as n_raw_lines,
        cast(sum(n_rows) filter (where row_class = 'kept') as bigint) as n_kept_lines
    from audit

),

customer_counts as (

    select
        count(*) as n_customers,
        min(snapshot_date) as snapshot_date
    from customer_features

),

later_orders as (

    select count(*) as n_orders_after_snapshot
    from orders
    cross join customer_counts
    where orders.order_date >= customer_counts.snapshot_date

),

shared_invoices as (

    select count(distinct invoice_id) as n_shared_invoices
    from orders
    where n_customers_on_invoice > 1

),

feature_lists as (

    select
        {{ ordered_string_agg('feature', "', '", 'feature_order', where='is_used') }}
            as clustering_features,
        {{ ordered_string_agg(
            'feature', "', '", 'feature_order', where="is_used and transform = 'log1p'"
        ) }} as log_transformed_features,
        {{ ordered_string_agg('unused_reason', "'; '", 'feature_order', where='not is_used') }}
            as unused_features
    from scaler_parameters

),

evaluation_values as (

    select
        max(metric_value) filter (where metric = 'silhouette') as silhouette,
        max(metric_value) filter (
            where metric = 'ari_kmeans_vs_hierarchical'
        ) as ari_kmeans_vs_hierarchical
    from evaluation

),

versions as (

    select {{ engine_version() }} as engine_version

),

final as (

    select
        '{{ invocation_id }}' as invocation_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as run_started_at,
        {{ sql_string(var('raw_transactions_path')) }} as raw_transactions_path,
        line_counts.n_raw_lines,
        line_counts.n_kept_lines,
        customer_counts.n_customers,
        customer_counts.snapshot_date,
        later_orders.n_orders_after_snapshot,
        shared_invoices.n_shared_invoices,
        feature_lists.clustering_features,
        feature_lists.log_transformed_features,
        feature_lists.unused_features,
        '{{ var("scaler") }}' as scaler,
        '{{ var("winsorize_quantiles") | join(", ") }}' as winsorize_quantiles,
        selection.k,
        selection.selection_rule,
        selection.selection_reason,
        {{ var('random_state') }} as random_state,
        evaluation_values.silhouette,
        selection.inertia,
        selection.calinski_harabasz,
        selection.davies_bouldin,
        selection.stability,
        evaluation_values.ari_kmeans_vs_hierarchical,
        selection.hierarchical_method,
        '{{ dbt_version }}' as dbt_version,
        versions.engine_version,
        selection.sklearn_version

    from selection
    cross join line_counts
    cross join customer_counts
    cross join later_orders
    cross join shared_invoices
    cross join feature_lists
    cross join evaluation_values
    cross join versions

)

select * from final
