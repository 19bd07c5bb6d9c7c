{# Prices keep the decimal type the loader chose for the file (wide enough for every price in
    it, python/customer_segmentation/ingest.py); a source table loaded some other way is cast to
    a decimal with 12 decimal places. source() is called once: on DuckDB each call loads the
    file again. -#}
{%- set raw_transactions = source('online_retail', 'transactions') -%}
{%- set price_type = namespace(value='decimal(38, 12)') -%}
{%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(raw_transactions) -%}
        {%- if column.name == 'UnitPrice' and column.data_type.lower().startswith('decimal') -%}
            {%- set price_type.value = column.data_type -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}
-- Raw columns keep the input file's spelling (quoted for the engine: "x" on DuckDB, `x` on
-- Spark); everything after staging is snake_case.
-- noqa: disable=RF06

with

source as (

    select * from {{ raw_transactions }}

),

final as (

    select
        cast(source_row_number as bigint) as transaction_line_id,
        trim(cast({{ adapter.quote('InvoiceNo') }} as {{ dbt.type_string() }})) as invoice_id,
        trim(cast({{ adapter.quote('StockCode') }} as {{ dbt.type_string() }})) as stock_code,
        nullif(
            trim(cast({{ adapter.quote('Description') }} as {{ dbt.type_string() }})), ''
        ) as product_description,
        cast({{ adapter.quote('Quantity') }} as integer) as quantity,
        cast({{ adapter.quote('InvoiceDate') }} as timestamp) as invoiced_at,
        -- Exact decimal money: sums then do not depend on row order (doubles would, and a
        -- build on shuffled rows could round a cent differently).
        cast({{ adapter.quote('UnitPrice') }} as {{ price_type.value }}) as unit_price,
        -- Exact ids: the loader typed them without a detour through floating point.
        cast({{ adapter.quote('CustomerID') }} as {{ customer_id_type() }}) as customer_id,
        nullif(
            trim(cast({{ adapter.quote('Country') }} as {{ dbt.type_string() }})), ''
        ) as country

    from source

)

select * from final
