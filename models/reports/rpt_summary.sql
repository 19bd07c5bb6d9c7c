-- The figures the report's opening summary states: how many customers as of when, from how
-- many lines, the chosen k and why, the largest and the most valuable segment. One row.
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
        row_number() over (order by n_customers desc, cluster_id asc) as size_rank,
        row_number() over (order by share_of_revenue desc, cluster_id asc) as revenue_rank

    from segment_profiles

),

customers as (

    select cast(sum(n_customers) as bigint) as n_customers

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

final as (

    select
        snapshot.snapshot_date,
        customers.n_customers,
        transaction_lines.n_transaction_lines,
        transaction_lines.n_kept_lines,
        chosen_k.k,
        chosen_k.selection_reason,
        largest_segment.largest_segment_name,
        largest_segment.largest_share_of_customers,
        most_valuable_segment.most_valuable_segment_name,
        most_valuable_segment.most_valuable_share_of_revenue,
        most_valuable_segment.most_valuable_share_of_customers

    from snapshot
    cross join customers
    cross join transaction_lines
    cross join chosen_k
    cross join largest_segment
    cross join most_valuable_segment

)

select * from final
