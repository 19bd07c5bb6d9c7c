{#- A SQL string literal, quotes doubled, so a file path cannot inject SQL. -#}
{% macro sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{#-
    DuckDB table function reading the optional customer attributes file (var
    customer_attributes_path): CSV or Parquet with a `customer_id` column. Checks at run time that
    the key exists and that no attribute column collides with a feature column.
-#}
{% macro customer_attributes_source(path, feature_columns) %}
    {%- if target.type != 'duckdb' -%}
        {{ exceptions.raise_compiler_error(
            "customer_attributes_path is read by DuckDB; on " ~ target.type ~ ", leave it unset "
            ~ "and join your attributes table to customer_features in a model of your own") }}
    {%- endif -%}
    {%- set lowered = path | lower -%}
    {%- if lowered.endswith('.parquet') or lowered.endswith('.pq') -%}
        {%- set reader = 'read_parquet(' ~ sql_string(path) ~ ')' -%}
    {%- elif lowered.endswith('.csv') -%}
        {%- set reader = 'read_csv(' ~ sql_string(path) ~ ', header = true)' -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "customer_attributes_path " ~ path ~ ": expected a .csv or .parquet file") }}
    {%- endif -%}
    {%- if execute -%}
        {%- set described = run_query('describe select * from ' ~ reader) -%}
        {%- set columns = described.columns[0].values() | map('lower') | list -%}
        {%- if 'customer_id' not in columns -%}
            {{ exceptions.raise_compiler_error(
                "customer_attributes_path " ~ path ~ ": no customer_id column (found: "
                ~ (described.columns[0].values() | join(', ')) ~ ")") }}
        {%- endif -%}
        {%- set clashes = [] -%}
        {%- for column in columns if column != 'customer_id' and column in feature_columns -%}
            {%- do clashes.append(column) -%}
        {%- endfor -%}
        {%- if clashes -%}
            {{ exceptions.raise_compiler_error(
                "customer_attributes_path " ~ path ~ ": column(s) " ~ (clashes | join(', '))
                ~ " clash with customer feature names; rename them in the file") }}
        {%- endif -%}
    {%- endif -%}
    {{ reader }}
{%- endmacro %}
