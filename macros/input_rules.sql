{#-
    The range of dates a line may carry, as SQL date literals: lines outside it are classified
    implausible_date. earliest_plausible_date (default 1990-01-01); latest_plausible_date, or
    when it is null the day after the build started (UTC), so a stray 2099 never moves the
    snapshot. The day after: a line's time is the shop's wall clock, which east of UTC is
    already tomorrow (up to 14 hours ahead).
-#}
{% macro plausible_dates() %}
    {%- set tomorrow = run_started_at + modules.datetime.timedelta(days=1) -%}
    {%- set latest = var('latest_plausible_date') or tomorrow.strftime('%Y-%m-%d') -%}
    {{ return({
        'earliest': "cast(" ~ sql_string(var('earliest_plausible_date')) ~ " as date)",
        'latest': "cast(" ~ sql_string(latest) ~ " as date)",
    }) }}
{% endmacro %}

{#- The SQL type of customer_id in every table: bigint, or text with customer_id_type string. -#}
{% macro customer_id_type() %}
    {{- return(dbt.type_string() if var('customer_id_type') == 'string' else 'bigint') -}}
{% endmacro %}
