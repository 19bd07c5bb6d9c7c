{#-
    build_log: two rows per build that writes tables (dbt build, run or seed), one when it
    starts and one when it ends, kept across builds. A build that failed, or never ended (killed),
    leaves tables of two builds side by side; the report reads the latest build's rows and
    refuses such a mix, naming the build and what failed. Insert-only, so it works on Spark too.
-#}
{% macro build_log_relation() %}
    {{- return(api.Relation.create(database=target.database, schema=target.schema,
                                   identifier='build_log')) -}}
{% endmacro %}

{% macro records_builds() %}
    {{- return(execute and flags.WHICH in ['build', 'run', 'seed']) -}}
{% endmacro %}

{% macro log_build_event(event, status, failed_nodes) %}
    {%- set relation = build_log_relation() -%}
    {#- UTC: utcnow, as dbt's modules.datetime has no timezone. -#}
    {%- set now = modules.datetime.datetime.utcnow() -%}
    {%- do run_query(
        "create table if not exists " ~ relation ~ " (invocation_id " ~ dbt.type_string()
        ~ ", event " ~ dbt.type_string() ~ ", logged_at " ~ dbt.type_timestamp()
        ~ ", command " ~ dbt.type_string() ~ ", status " ~ dbt.type_string()
        ~ ", failed_nodes " ~ dbt.type_string() ~ ", raw_transactions_path "
        ~ dbt.type_string() ~ ")"
    ) -%}
    {%- do run_query(
        "insert into " ~ relation ~ " values (" ~ sql_string(invocation_id) ~ ", "
        ~ sql_string(event) ~ ", cast(" ~ sql_string(now.strftime('%Y-%m-%d %H:%M:%S.%f'))
        ~ " as " ~ dbt.type_timestamp() ~ "), " ~ sql_string(flags.WHICH) ~ ", "
        ~ sql_string(status) ~ ", " ~ (sql_string(failed_nodes) if failed_nodes else 'null')
        ~ ", " ~ sql_string(var('raw_transactions_path')) ~ ")"
    ) -%}
{% endmacro %}

{% macro record_build_start() %}
    {%- if records_builds() -%}
        {%- do log_build_event('started', 'running', none) -%}
    {%- endif -%}
    select 1
{% endmacro %}

{% macro record_build_end(results) %}
    {%- if records_builds() -%}
        {%- set failed = [] -%}
        {%- for result in results if result.status in ['error', 'fail'] -%}
            {%- do failed.append(result.node.name ~ ' (' ~ result.status ~ ')') -%}
        {%- endfor -%}
        {%- do log_build_event('finished', 'error' if failed else 'success', failed | join(', ')) -%}
    {%- endif -%}
    select 1
{% endmacro %}
