{#- Use a custom schema as named (seeds land in `reference`, not `main_reference`). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name else target.schema }}
{%- endmacro %}
