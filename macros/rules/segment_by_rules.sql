{#-
    Apply the stored segment rules to any relation with the clustering feature columns (in
    their own units, as customer_features has them): every column of relation, plus rule_id
    (the rule the row meets) and rule_cluster_id (the segment that rule assigns). rules is
    segment_rules; only the rules that assign a segment are used, and they do not overlap.
    A row with a missing feature value meets no rule (null). The relation must not have
    columns named rule_id or rule_cluster_id already (customer_segments has them: apply the
    macro to customer_features, or to a select of the columns you need).

        {{ segment_by_rules(ref('customer_features'), ref('segment_rules')) }}

    The rules are read when the model compiles, so the SQL dbt runs holds each predicate as
    written in segment_rules.sql_predicate. Before segment_rules exists (a first compile)
    both columns are null.
-#}
{% macro segment_by_rules(relation, rules) %}
    {%- set assigning = [] -%}
    {%- if execute and load_relation(rules) is not none -%}
        {%- set result = run_query(
            "select rule_id, cluster_id, sql_predicate from " ~ rules
            ~ " where assigns_segment order by rule_id"
        ) -%}
        {%- for row in result.rows -%}
            {%- do assigning.append(row) -%}
        {%- endfor -%}
    {%- endif %}
    select
        rule_input.*,
        {%- if assigning %}
            case
                {%- for row in assigning %}
                    when {{ row[2] }} then {{ row[0] }}
                {%- endfor %}
            end as rule_id,
            case
                {%- for row in assigning %}
                    when {{ row[2] }} then {{ row[1] }}
                {%- endfor %}
            end as rule_cluster_id
        {%- else %}
            cast(null as bigint) as rule_id,
            cast(null as bigint) as rule_cluster_id
        {%- endif %}

    from {{ relation }} as rule_input
{%- endmacro %}
