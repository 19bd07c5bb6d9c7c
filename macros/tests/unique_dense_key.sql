{#-
    unique, for a key of whole numbers numbered from 1 such as a line's position in the file.
    Fails with one row, the number of keys and of distinct keys, when a value repeats. On DuckDB
    the distinct keys are counted with a bitmap over the key's range (bitstring_agg): one pass
    and no hash table, 1 s where dbt's unique test took 16 s on 78M line ids. The bitmap holds a
    bit for every value between the smallest and the largest key, so the key must be dense.
-#}
{% test unique_dense_key(model, column_name) %}
    {{ adapter.dispatch('test_unique_dense_key')(model, column_name) }}
{% endtest %}

{% macro default__test_unique_dense_key(model, column_name) %}

    with

    counted as (

        select
            count({{ column_name }}) as n_keys,
            count(distinct {{ column_name }}) as n_distinct_keys

        from {{ model }}

    )

    select * from counted
    where n_keys != n_distinct_keys

{% endmacro %}

{% macro duckdb__test_unique_dense_key(model, column_name) %}

    with

    counted as (

        select
            count({{ column_name }}) as n_keys,
            coalesce(bit_count(bitstring_agg({{ column_name }})), 0) as n_distinct_keys

        from {{ model }}

    )

    select * from counted
    where n_keys != n_distinct_keys

{% endmacro %}
