-- depends_on: {{ ref('segment_rules') }}
-- The rules that assign segments neither overlap nor leave a gap: every customer meets exactly
-- one of their SQL predicates (evaluated independently, not first-match as in a case).
{%- set predicates = [] %}
{%- if execute and load_relation(ref('segment_rules')) is not none %}
    {%- set found = run_query(
        "select sql_predicate from " ~ ref('segment_rules') ~ " where assigns_segment"
    ) %}
    {%- for predicate in found.columns[0].values() %}
        {%- do predicates.append(predicate) %}
    {%- endfor %}
{%- endif %}
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

counted as (

    select
        customer_id,
        {%- for predicate in predicates %}
            case when {{ predicate }} then 1 else 0 end{{ ' +' if not loop.last }}
        {%- else %}
            1
        {%- endfor %} as rules_met

    from customer_features

)

select * from counted
where rules_met != 1
