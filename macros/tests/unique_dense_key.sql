{#-
    unique, for a key of whole numbers numbered from 1 such as a line's position in the file.
    Fails with one row, the number of keys and of distinct keys, when a value repeats.
-#}
{% test unique_dense_key(model, column_name) %}

    with

    counted as (

        select
            count({{ column_name }}) as n_keys,
            {{ count_distinct_dense(column_name) }} as n_distinct_keys

        from {{ model }}

    )

    select * from counted
    where n_keys != n_distinct_keys

{% endtest %}


{#-
    count(distinct expr) for dense whole numbers. On DuckDB a bitmap over the values' range
    (bitstring_agg): one pass and no hash table, 1 s where dbt's unique test took 16 s on 78M
    line ids. The bitmap holds a bit for every value between the smallest and the largest, so
    the values must be dense.
-#}
{% macro count_distinct_dense(expr) -%}
    {{ return(adapter.dispatch('count_distinct_dense')(expr)) }}
{%- endmacro %}

{% macro default__count_distinct_dense(expr) -%}
    count(distinct {{ expr }})
{%- endmacro %}

{% macro duckdb__count_distinct_dense(expr) -%}
    coalesce(bit_count(bitstring_agg({{ expr }})), 0)
{%- endmacro %}
