-- One row per rule and the segment it describes: the tree's rules (segment_rule_tree), each
-- with the segment it assigns, and for a segment no rule assigns any customer of (the tree
-- cannot separate it at this depth) its best rule, the one with the highest F1 for it, marked
-- assigns_segment = false. Coverage, precision and recall are counted on every customer.
with

segment_rule_tree as (

    select * from {{ ref('segment_rule_tree') }}

),

customer_rule_segments as (

    select * from {{ ref('customer_rule_segments') }}

),

customer_clusters as (

    select * from {{ ref('customer_clusters') }}

),

segment_names as (

    select * from {{ ref('segment_names') }}

),

crossed as (

    select
        customer_rule_segments.rule_id,
        customer_clusters.cluster_id,
        cast(count(*) as bigint) as n_in_segment

    from customer_rule_segments
    inner join customer_clusters
        on customer_rule_segments.customer_id = customer_clusters.customer_id
    where customer_rule_segments.rule_id is not null
    group by customer_rule_segments.rule_id, customer_clusters.cluster_id

),

rule_totals as (

    select
        rule_id,
        cast(sum(n_in_segment) as bigint) as n_customers

    from crossed
    group by rule_id

),

segment_totals as (

    select
        cluster_id,
        count(*) as n_segment

    from customer_clusters
    group by cluster_id

),

scored as (

    select
        crossed.rule_id,
        crossed.cluster_id,
        crossed.n_in_segment,
        rule_totals.n_customers,
        segment_totals.n_segment,
        2.0 * crossed.n_in_segment / (rule_totals.n_customers + segment_totals.n_segment) as f1

    from crossed
    inner join rule_totals on crossed.rule_id = rule_totals.rule_id
    inner join segment_totals on crossed.cluster_id = segment_totals.cluster_id

),

assigning as (

    select
        rule_id,
        cluster_id,
        true as assigns_segment

    from segment_rule_tree

),

-- A segment is assigned when a rule assigns it and covers at least one of its customers (a
-- rule that rounding left without customers does not count).
assigned_segments as (

    select distinct assigning.cluster_id

    from assigning
    inner join crossed
        on
            assigning.rule_id = crossed.rule_id
            and assigning.cluster_id = crossed.cluster_id

),

unassigned_segments as (

    select segment_totals.cluster_id

    from segment_totals
    left join assigned_segments on segment_totals.cluster_id = assigned_segments.cluster_id
    where assigned_segments.cluster_id is null

),

best_available as (

    select
        scored.rule_id,
        scored.cluster_id,
        false as assigns_segment

    from scored
    inner join unassigned_segments on scored.cluster_id = unassigned_segments.cluster_id
    qualify row_number() over (
        partition by scored.cluster_id order by scored.f1 desc, scored.rule_id asc
    ) = 1

),

described as (

    select * from assigning
    union all
    select * from best_available

),

total as (

    select count(*) as n_all from customer_clusters

),

final as (

    select
        described.rule_id,
        described.cluster_id,
        segment_names.segment_name,
        described.assigns_segment,
        segment_rule_tree.sql_predicate,
        segment_rule_tree.rule_text,
        segment_rule_tree.n_conditions,
        coalesce(rule_totals.n_customers, 0) as n_customers,
        coalesce(rule_totals.n_customers, 0) / cast(total.n_all as double) as share_of_customers,
        coalesce(scored.n_in_segment, 0) as n_in_segment,
        cast(scored.n_in_segment as double) / rule_totals.n_customers as rule_precision,
        coalesce(scored.n_in_segment, 0) / cast(segment_totals.n_segment as double)
            as rule_recall,
        row_number() over (
            partition by described.cluster_id
            order by coalesce(scored.n_in_segment, 0) desc, described.rule_id asc
        ) as rank_in_segment

    from described
    inner join segment_rule_tree on described.rule_id = segment_rule_tree.rule_id
    inner join segment_names on described.cluster_id = segment_names.cluster_id
    inner join segment_totals on described.cluster_id = segment_totals.cluster_id
    cross join total
    left join rule_totals on described.rule_id = rule_totals.rule_id
    left join scored
        on
            described.rule_id = scored.rule_id
            and described.cluster_id = scored.cluster_id

)

select * from final
