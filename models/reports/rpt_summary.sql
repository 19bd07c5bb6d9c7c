-- The figures the report's opening summary states: how many customers as of when, from how
-- many lines, the chosen k and why, the largest and the most valuable segment, and the value
-- ahead (the segment with the most predicted value, the one with the most value at risk, or
-- why the lifetime-value models were not fitted). One row.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

data_quality_audit as (

    select * from {{ ref('data_quality_audit') }}

),

cluster_model_selection as (

    select * from {{ ref('cluster_model_selection') }}

),

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

),

customer_value as (

    select * from {{ ref('customer_value') }}

),

clv_model_parameters as (

    select * from {{ ref('clv_model_parameters') }}

),

snapshot as (

    select max(snapshot_date) as snapshot_date

    from customer_features

),

transaction_lines as (

    select
        cast(sum(n_rows) as bigint) as n_transaction_lines,
        cast(sum(case when row_class = 'kept' then n_rows else 0 end) as bigint) as n_kept_lines

    from data_quality_audit

),

chosen_k as (

    select
        k,
        selection_reason

    from cluster_model_selection
    where is_selected and algorithm = 'kmeans'

),

-- Ties go to the lower cluster_id (cluster 1 has the highest monetary centroid).
ranked_segments as (

    select
        segment_name,
        n_customers,
        share_of_customers,
        share_of_revenue,
        predicted_clv,
        share_of_predicted_clv,
        value_at_risk,
        value_at_risk / nullif(sum(value_at_risk) over (), 0) as share_of_value_at_risk,
        row_number() over (order by n_customers desc, cluster_id asc) as size_rank,
        row_number() over (order by share_of_revenue desc, cluster_id asc) as revenue_rank,
        row_number() over (
            order by predicted_clv desc nulls last, cluster_id asc
        ) as predicted_value_rank,
        row_number() over (order by value_at_risk desc nulls last, cluster_id asc) as risk_rank

    from segment_profiles

),

customers as (

    select
        cast(sum(n_customers) as bigint) as n_customers,
        sum(revenue) as revenue

    from segment_profiles

),

largest_segment as (

    select
        segment_name as largest_segment_name,
        share_of_customers as largest_share_of_customers

    from ranked_segments
    where size_rank = 1

),

most_valuable_segment as (

    select
        segment_name as most_valuable_segment_name,
        share_of_revenue as most_valuable_share_of_revenue,
        share_of_customers as most_valuable_share_of_customers

    from ranked_segments
    where revenue_rank = 1

),

-- Null names when the models were not fitted (null predicted CLV) or nobody is at risk.
value_segments as (

    select
        max(segment_name) filter (
            where predicted_value_rank = 1 and predicted_clv is not null
        ) as top_value_segment_name,
        max(share_of_predicted_clv) filter (
            where predicted_value_rank = 1 and predicted_clv is not null
        ) as top_value_share_of_predicted_clv,
        max(share_of_customers) filter (
            where predicted_value_rank = 1 and predicted_clv is not null
        ) as top_value_share_of_customers,
        max(segment_name) filter (
            where risk_rank = 1 and value_at_risk > 0
        ) as most_at_risk_segment_name,
        max(value_at_risk) filter (
            where risk_rank = 1 and value_at_risk > 0
        ) as most_at_risk_value_at_risk,
        max(share_of_value_at_risk) filter (
            where risk_rank = 1 and value_at_risk > 0
        ) as most_at_risk_share_of_value_at_risk

    from ranked_segments

),

customer_values as (

    select
        count(p_alive) as n_customers_with_p_alive,
        count(predicted_clv) as n_customers_with_predicted_clv,
        sum(predicted_clv) as predicted_clv,
        sum(value_at_risk) as value_at_risk,
        max(horizon_days) as clv_horizon_days

    from customer_value

),

-- Why the snapshot fit's values are null, per model; null when they are usable.
clv_fit_reasons as (

    select
        max(null_reason) filter (where model = 'bg_nbd') as clv_purchases_null_reason,
        max(null_reason) filter (where model = 'gamma_gamma') as clv_spend_null_reason

    from clv_model_parameters
    where fit = 'snapshot'

),

final as (

    select
        snapshot.snapshot_date,
        '{{ var("currency") }}' as currency,
        '{{ var("monetary_basis") }}' as monetary_basis,
        {{ var('lapsed_after_days') }} as lapsed_after_days,
        customers.n_customers,
        transaction_lines.n_transaction_lines,
        transaction_lines.n_kept_lines,
        chosen_k.k,
        chosen_k.selection_reason,
        largest_segment.largest_segment_name,
        largest_segment.largest_share_of_customers,
        most_valuable_segment.most_valuable_segment_name,
        most_valuable_segment.most_valuable_share_of_revenue,
        most_valuable_segment.most_valuable_share_of_customers,
        customer_values.clv_horizon_days,
        customer_values.n_customers_with_p_alive,
        customer_values.n_customers_with_predicted_clv,
        customer_values.predicted_clv,
        customer_values.value_at_risk,
        customer_values.value_at_risk / nullif(customers.revenue, 0) as share_of_revenue_at_risk,
        value_segments.top_value_segment_name,
        value_segments.top_value_share_of_predicted_clv,
        value_segments.top_value_share_of_customers,
        value_segments.most_at_risk_segment_name,
        value_segments.most_at_risk_value_at_risk,
        value_segments.most_at_risk_share_of_value_at_risk,
        clv_fit_reasons.clv_purchases_null_reason,
        clv_fit_reasons.clv_spend_null_reason

    from snapshot
    cross join customers
    cross join transaction_lines
    cross join chosen_k
    cross join largest_segment
    cross join most_valuable_segment
    cross join value_segments
    cross join customer_values
    cross join clv_fit_reasons

)

select * from final
