-- depends_on: {{ ref('segment_profiles') }}
-- One segment's rule pasted into a query: the customers of customer_features (or any relation
-- with the clustering feature columns, e.g. this week's customers in a CRM export) that the
-- segment's rule selects, without the clustering. dbt fills in the rule from segment_profiles
-- when it compiles; see the SQL with the rule pasted in, or run it:
--   .venv/bin/dbt compile --select segment_rule_where_clause
--   .venv/bin/dbt show --select segment_rule_where_clause --limit 20
-- Another segment: --vars '{rule_cluster_id: 3}'. The predicate is
-- segment_profiles.segment_all_rules_sql, every rule that assigns the segment (its words here
-- are the largest rule's, segment_rule); one rule at a time is in segment_rules.sql_predicate.
{%- set cluster_id = var('rule_cluster_id', 1) | int %}
{%- set rule = {
    'name': 'no segment', 'words': 'no rule yet (run dbt build first)', 'sql': 'false'
} %}
{%- if execute and load_relation(ref('segment_profiles')) is not none %}
    {%- set found = run_query(
        "select segment_name, segment_rule, segment_all_rules_sql from "
        ~ ref('segment_profiles') ~ " where cluster_id = " ~ cluster_id
    ) %}
    {%- if found.rows %}
        {%- set row = found.rows[0] %}
        {%- do rule.update({'name': row[0], 'words': row[1], 'sql': row[2]}) %}
    {%- endif %}
{%- endif %}
-- Segment {{ cluster_id }}, {{ rule['name'] }}: {{ rule['words'] }}
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

selected as (

    select
        customer_id,
        recency_days,
        frequency,
        monetary

    from customer_features
    where ({{ rule['sql'] }})

)

select * from selected
order by monetary desc
