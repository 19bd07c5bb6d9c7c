-- The segment rules applied in SQL (macro segment_by_rules) give every customer the same rule
-- and segment as the tree's rules applied in Python (customer_rule_segments).
with

by_sql as (

    {{ segment_by_rules(ref('customer_features'), ref('segment_rules')) }}

),

by_python as (

    select * from {{ ref('customer_rule_segments') }}

),

compared as (

    select
        coalesce(by_sql.customer_id, by_python.customer_id) as customer_id,
        by_sql.rule_id as sql_rule_id,
        by_python.rule_id as python_rule_id,
        by_sql.rule_cluster_id as sql_cluster_id,
        by_python.rule_cluster_id as python_cluster_id

    from by_sql
    full outer join by_python on by_sql.customer_id = by_python.customer_id

)

select * from compared
where
    sql_rule_id is distinct from python_rule_id
    or sql_cluster_id is distinct from python_cluster_id
