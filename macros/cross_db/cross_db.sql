{#-
    Small dispatched macros where DuckDB and Spark SQL differ and dbt's own cross-database
    macros do not fit (the models use dbt.date_trunc and dbt.type_string where they do). Each
    DuckDB version is what the models used before; the Spark one gives the same values.
-#}

{#- ISO day of week: 1 = Monday ... 7 = Sunday. Integer results are bigint on both engines. -#}
{% macro iso_weekday(expr) -%}
    {{ return(adapter.dispatch('iso_weekday')(expr)) }}
{%- endmacro %}

{% macro default__iso_weekday(expr) -%}
    isodow({{ expr }})
{%- endmacro %}

{#- Spark's dayofweek counts from Sunday = 1. -#}
{% macro spark__iso_weekday(expr) -%}
    cast((dayofweek({{ expr }}) + 5) % 7 + 1 as bigint)
{%- endmacro %}


{#- An empty array of the given element type (bigint, string, ...). -#}
{% macro empty_array(element_type) -%}
    {{ return(adapter.dispatch('empty_array')(element_type)) }}
{%- endmacro %}

{% macro default__empty_array(element_type) -%}
    cast([] as {{ element_type }}[])
{%- endmacro %}

{% macro spark__empty_array(element_type) -%}
    cast(array() as array<{{ element_type }}>)
{%- endmacro %}


{#-
    string_agg with an order: `expr` values joined by `separator` in `order_by` order, over the
    rows where `where` holds (all rows when none).
-#}
{% macro ordered_string_agg(expr, separator, order_by, where=none) -%}
    {{ return(adapter.dispatch('ordered_string_agg')(expr, separator, order_by, where)) }}
{%- endmacro %}

{% macro default__ordered_string_agg(expr, separator, order_by, where) -%}
    string_agg({{ expr }}, {{ separator }} order by {{ order_by }})
    {%- if where is not none %} filter (where {{ where }}){% endif %}
{%- endmacro %}

{#- Spark: collect (order key, value) pairs, sort them, keep the values. -#}
{% macro spark__ordered_string_agg(expr, separator, order_by, where) -%}
    nullif(array_join(transform(
        array_sort(collect_list(named_struct('o', {{ order_by }}, 'v', {{ expr }}))
        {%- if where is not none %} filter (where {{ where }}){% endif %}),
        x -> x.v
    ), {{ separator }}), '')
{%- endmacro %}


{#-
    A one-column relation of the integers start, start + 1, ..., stop - 1 (a handful: months,
    score bins), written out so it needs no engine-specific series function.
-#}
{% macro integer_range(start, stop, column_name) -%}
    {%- for i in range(start, stop) %}
        select cast({{ i }} as bigint) as {{ column_name }}{{ ' union all' if not loop.last }}
    {%- endfor %}
{%- endmacro %}


{#-
    Date arithmetic that keeps dates dates: dbt.dateadd returns a timestamp on Spark and
    dbt.datediff casts dates to timestamps on DuckDB.
-#}

{#- Whole days from `start` to `end` (dates). -#}
{% macro days_between(start, end) -%}
    {{ return(adapter.dispatch('days_between')(start, end)) }}
{%- endmacro %}

{% macro default__days_between(start, end) -%}
    date_diff('day', {{ start }}, {{ end }})
{%- endmacro %}

{% macro spark__days_between(start, end) -%}
    cast(datediff({{ end }}, {{ start }}) as bigint)
{%- endmacro %}


{#- Month boundaries crossed from `start` to `end` (dates). -#}
{% macro months_between(start, end) -%}
    {{ return(adapter.dispatch('months_between')(start, end)) }}
{%- endmacro %}

{% macro default__months_between(start, end) -%}
    date_diff('month', {{ start }}, {{ end }})
{%- endmacro %}

{% macro spark__months_between(start, end) -%}
    cast(
        (year({{ end }}) - year({{ start }})) * 12 + month({{ end }}) - month({{ start }}) as bigint
    )
{%- endmacro %}


{#- The date `n` days after `expr` (a date); n may be negative or a column. -#}
{% macro add_days(expr, n) -%}
    {{ return(adapter.dispatch('add_days')(expr, n)) }}
{%- endmacro %}

{% macro default__add_days(expr, n) -%}
    cast({{ expr }} + to_days(cast({{ n }} as integer)) as date)
{%- endmacro %}

{#- Spark's date_add takes an int (a bigint such as floor's result does not cast implicitly). -#}
{% macro spark__add_days(expr, n) -%}
    date_add({{ expr }}, cast({{ n }} as int))
{%- endmacro %}


{#- The date `n` months after `expr` (a date); n may be negative or a column. -#}
{% macro add_months(expr, n) -%}
    {{ return(adapter.dispatch('add_months')(expr, n)) }}
{%- endmacro %}

{% macro default__add_months(expr, n) -%}
    cast({{ expr }} + to_months(cast({{ n }} as integer)) as date)
{%- endmacro %}

{% macro spark__add_months(expr, n) -%}
    add_months({{ expr }}, {{ n }})
{%- endmacro %}


{#- The first day of the month of `expr`, as a date. -#}
{% macro month_start(expr) -%}
    cast({{ dbt.date_trunc('month', expr) }} as date)
{%- endmacro %}


{#- English name of the weekday (Monday ... Sunday). -#}
{% macro weekday_name(expr) -%}
    {{ return(adapter.dispatch('weekday_name')(expr)) }}
{%- endmacro %}

{% macro default__weekday_name(expr) -%}
    dayname({{ expr }})
{%- endmacro %}

{% macro spark__weekday_name(expr) -%}
    date_format({{ expr }}, 'EEEE')
{%- endmacro %}


{#-
    Wide to long: one row per input row and column of `columns`, with the column's name in
    `name_column` and its value in `value_column`. `relation` is the name of a relation or a
    CTE; the other columns are carried through.
-#}
{% macro unpivot_columns(relation, columns, name_column, value_column) -%}
    {{ return(adapter.dispatch('unpivot_columns')(relation, columns, name_column, value_column)) }}
{%- endmacro %}

{% macro default__unpivot_columns(relation, columns, name_column, value_column) -%}
    unpivot {{ relation }}
    on {{ columns | join(', ') }}
    into name {{ name_column }} value {{ value_column }}
{%- endmacro %}

{% macro spark__unpivot_columns(relation, columns, name_column, value_column) -%}
    select * from {{ relation }} as wide
    unpivot ({{ value_column }} for {{ name_column }} in ({{ columns | join(', ') }}))
{%- endmacro %}


{#-
    Greedy unique matching of (cluster, archetype) pairs: walk `ranked_pairs` (cluster_id,
    archetype, profile_distance, pair_rank 1..n) nearest first and take a pair when neither its
    cluster nor its archetype is taken yet. Returns the taken pairs: cluster_id, archetype,
    profile_distance. A walk is sequential: DuckDB runs it as a recursive CTE; on Spark, whose
    recursive CTE re-plans every step and ran out of memory here, it is a fold (aggregate) over
    the sorted pairs.
-#}
{% macro greedy_unique_matching(ranked_pairs) -%}
    {{ return(adapter.dispatch('greedy_unique_matching')(ranked_pairs)) }}
{%- endmacro %}

{% macro default__greedy_unique_matching(ranked_pairs) -%}
    {%- set is_free -%}
        not array_contains(walk.named_clusters, next_pair.cluster_id)
        and not array_contains(walk.used_archetypes, next_pair.archetype)
    {%- endset -%}
    with recursive walk as (

        select
            0 as pair_rank,
            false as is_taken,
            cast(null as bigint) as cluster_id,
            cast(null as {{ dbt.type_string() }}) as archetype,
            cast(null as double) as profile_distance,
            {{ empty_array('bigint') }} as named_clusters,
            {{ empty_array(dbt.type_string()) }} as used_archetypes

        union all

        select
            next_pair.pair_rank,
            {{ is_free }} as is_taken,
            next_pair.cluster_id,
            next_pair.archetype,
            next_pair.profile_distance,
            case
                when {{ is_free }}
                    then array_append(walk.named_clusters, next_pair.cluster_id)
                else walk.named_clusters
            end as named_clusters,
            case
                when {{ is_free }}
                    then array_append(walk.used_archetypes, next_pair.archetype)
                else walk.used_archetypes
            end as used_archetypes

        from walk
        inner join {{ ranked_pairs }} as next_pair on walk.pair_rank + 1 = next_pair.pair_rank

    )

    select
        cluster_id,
        archetype,
        profile_distance

    from walk
    where is_taken
{%- endmacro %}

{% macro spark__greedy_unique_matching(ranked_pairs) -%}
    with sorted_pairs as (

        select
            array_sort(collect_list(named_struct(
                'pair_rank', cast(pair_rank as bigint),
                'cluster_id', cast(cluster_id as bigint),
                'archetype', archetype,
                'profile_distance', profile_distance
            ))) as pairs

        from {{ ranked_pairs }}

    ),

    folded as (

        select explode(aggregate(
            pairs,
            slice(pairs, 1, 0),
            (taken, pair) -> case
                when exists(
                    taken, t -> t.cluster_id = pair.cluster_id or t.archetype = pair.archetype
                ) then taken
                else array_append(taken, pair)
            end
        )) as pair

        from sorted_pairs

    )

    select
        pair.cluster_id,
        pair.archetype,
        pair.profile_distance

    from folded
{%- endmacro %}


{#-
    The engine's version, as text (clustering_runs records it): version() on both engines
    (DuckDB's is the library_version of pragma_version(), such as v2.0.1).
-#}
{% macro engine_version() -%}
    version()
{%- endmacro %}


{#-
    A 64-bit hash of several columns (nulls included), for finding candidate duplicates; equal
    hashes are then compared column by column, so a collision costs time, never correctness.
-#}
{% macro row_hash(columns) -%}
    {{ return(adapter.dispatch('row_hash')(columns)) }}
{%- endmacro %}

{% macro default__row_hash(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__row_hash(columns) -%}
    xxhash64({{ columns | join(', ') }})
{%- endmacro %}


{#-
    A struct with named fields, e.g. named_struct({'distance': 'd', 'cluster_id': 'c'}).
    min() of such structs compares field by field, so it picks a row by several keys in one
    aggregate (no window and no sort).
-#}
{% macro named_struct(fields) -%}
    {{ return(adapter.dispatch('named_struct')(fields)) }}
{%- endmacro %}

{% macro default__named_struct(fields) -%}
    struct_pack(
        {%- for name, expr in fields.items() %}{{ name }} := {{ expr }}{{ ', ' if not loop.last }}
        {%- endfor %})
{%- endmacro %}

{% macro spark__named_struct(fields) -%}
    named_struct(
        {%- for name, expr in fields.items() %}'{{ name }}', {{ expr }}{{ ', ' if not loop.last }}
        {%- endfor %})
{%- endmacro %}


{#-
    Written between `name as` and the CTE's parenthesis: DuckDB materialises a CTE that is read
    more than once (a full copy when it holds every line); `not materialized` makes it re-read
    the source instead. Spark always inlines CTEs.
-#}
{% macro not_materialized() -%}
    {{ return(adapter.dispatch('not_materialized')()) }}
{%- endmacro %}

{% macro default__not_materialized() -%}
    not materialized
{%- endmacro %}

{% macro spark__not_materialized() -%}
{%- endmacro %}


{#- The records of a JSON array of objects, one row per record, one column per field: for a
    select list (`select model_id, {{ json_records('segments_json', {...}) }} from ...`).
    fields: name -> type (bigint, double, varchar, or json for a nested value kept as text). -#}
{% macro json_records(expr, fields) -%}
    {{ return(adapter.dispatch('json_records')(expr, fields)) }}
{%- endmacro %}

{% macro default__json_records(expr, fields) -%}
    {%- set parts = [] -%}
    {%- for name, type in fields.items() -%}
        {%- do parts.append('"' ~ name ~ '": "' ~ type | upper ~ '"') -%}
    {%- endfor -%}
    unnest(from_json({{ expr }}, '[{{ "{" }}{{ parts | join(", ") }}{{ "}" }}]'), recursive := true)
{%- endmacro %}

{% macro spark__json_records(expr, fields) -%}
    {%- set parts = [] -%}
    {%- for name, type in fields.items() -%}
        {%- do parts.append(name ~ ': ' ~ ('string' if type in ('json', 'varchar') else type)) -%}
    {%- endfor -%}
    inline(from_json({{ expr }}, 'array<struct<{{ parts | join(", ") }}>>'))
{%- endmacro %}


{#- `expr` rounded to a whole number, as text with thousands separators: 1234567.6 -> 1,234,568. -#}
{% macro whole_number_text(expr) -%}
    {{ return(adapter.dispatch('whole_number_text')(expr)) }}
{%- endmacro %}

{% macro default__whole_number_text(expr) -%}
    format('{:,}', cast(round({{ expr }}) as bigint))
{%- endmacro %}

{% macro spark__whole_number_text(expr) -%}
    format_number(round({{ expr }}), 0)
{%- endmacro %}
