{#-
    build_log: two rows per build that writes tables (dbt build, run, seed or retry), one when
    it starts and one when it ends, kept across builds. A build that failed, or never ended
    (killed), leaves tables of two builds side by side, and so does a partial build (--select)
    of another file; the report accepts the tables only after a complete build (dbt build
    without --select, --exclude or --selector) that succeeded, followed by nothing that failed,
    did not finish, or read another file. Insert-only, so it works on Spark too.
-#}
{% macro build_log_relation() %}
    {#- Spark targets have no database: target.get, not target.database (Undefined there). -#}
    {{- return(api.Relation.create(database=target.get('database'), schema=target.schema,
                                   identifier='build_log')) -}}
{% endmacro %}

{% macro records_builds() %}
    {{- return(execute and flags.WHICH in ['build', 'run', 'seed', 'retry']) -}}
{% endmacro %}

{#- A build of every node: dbt build with no node selection. -#}
{% macro is_full_build() %}
    {%- set args = invocation_args_dict -%}
    {{- return(flags.WHICH == 'build' and not args.get('select') and not args.get('exclude')
               and not args.get('selector')) -}}
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
        ~ dbt.type_string() ~ ", is_full_build boolean)"
    ) -%}
    {%- if target.type == 'duckdb' -%}
        {#- A build_log written before is_full_build existed. -#}
        {%- do run_query("alter table " ~ relation ~ " add column if not exists is_full_build boolean") -%}
    {%- endif -%}
    {%- do run_query(
        "insert into " ~ relation ~ " values (" ~ sql_string(invocation_id) ~ ", "
        ~ sql_string(event) ~ ", cast(" ~ sql_string(now.strftime('%Y-%m-%d %H:%M:%S.%f'))
        ~ " as " ~ dbt.type_timestamp() ~ "), " ~ sql_string(flags.WHICH) ~ ", "
        ~ sql_string(status) ~ ", " ~ (sql_string(failed_nodes) if failed_nodes else 'null')
        ~ ", " ~ sql_string(var('raw_transactions_path')) ~ ", "
        ~ ('true' if is_full_build() else 'false') ~ ")"
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
