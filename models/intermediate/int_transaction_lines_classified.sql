-- Every raw line gets exactly one row_class; the first matching rule wins (see the
-- `row_classes` docs block for the order and why). The classes, their rule order, whether each
-- is kept and what it matches are the seed row_classes; the conditions are the CASE below, in
-- the seed's rule order.
{%- set line_columns = [
    'invoice_id', 'stock_code', 'product_description', 'quantity', 'invoiced_at', 'unit_price',
    'customer_id', 'country',
] %}
{%- set lines_columns = [] %}
{%- for column in line_columns %}{% do lines_columns.append('lines.' ~ column) %}{% endfor %}

with

-- Read four times below; re-reading the staging view is faster than the copy DuckDB would
-- otherwise materialise (35 s against 48 s on 78M lines).
lines as {{ not_materialized() }} (

    select * from {{ ref('stg_online_retail__transaction_lines') }}

),

non_product_codes as (

    select * from {{ ref('non_product_stock_codes') }}

),

row_classes as (

    select * from {{ ref('row_classes') }}

),

-- Matched once per distinct code (a few thousand), not once per line (millions).
distinct_codes as (

    select distinct stock_code from lines

),

non_product_matches as (

    select distinct distinct_codes.stock_code

    from distinct_codes
    inner join non_product_codes
        on
            (
                non_product_codes.match_type = 'exact'
                and upper(distinct_codes.stock_code) = upper(non_product_codes.stock_code)
            )
            or (
                non_product_codes.match_type = 'prefix'
                and left(
                    upper(distinct_codes.stock_code), length(non_product_codes.stock_code)
                ) = upper(non_product_codes.stock_code)
            )

),

-- Exact copies: lines whose every column is equal (nulls count as equal). A hash of the
-- columns finds the few candidate lines cheaply (grouping by the eight columns themselves took
-- twice as long on 78M lines); the window then compares candidates column by column, so a hash
-- collision cannot flag a line.
repeated_hashes as (

    select {{ row_hash(line_columns) }} as line_hash

    from lines
    group by 1
    having count(*) > 1

),

repeated_lines as (

    select
        lines.transaction_line_id,
        min(lines.transaction_line_id) over (
            partition by {{ lines_columns | join(', ') }}
        ) as first_line_id

    from lines
    -- A semi-join, the one `in (select ...)` of the project: DuckDB runs it 15-30% faster than
    -- the inner join with the same result (the hashes are unique), and DuckDB and Spark SQL
    -- share no semi-join syntax.
    where {{ row_hash(lines_columns) }} in (select repeated_hashes.line_hash from repeated_hashes)

),

flagged as (

    select
        lines.*,
        non_product_matches.stock_code is not null as is_non_product,
        coalesce(
            lines.transaction_line_id != repeated_lines.first_line_id, false
        ) as is_exact_duplicate

    from lines
    left join non_product_matches on lines.stock_code = non_product_matches.stock_code
    left join repeated_lines on lines.transaction_line_id = repeated_lines.transaction_line_id

),

classified as (

    select
        *,
        case
            when customer_id is null then 'missing_customer'
            when
                invoiced_at is null
                or cast(invoiced_at as date) < {{ plausible_dates().earliest }}
                or cast(invoiced_at as date) > {{ plausible_dates().latest }}
                then 'implausible_date'
            when upper(invoice_id) like 'A%' then 'adjustment'
            when upper(invoice_id) like 'C%' then 'cancellation'
            when is_non_product then 'non_product'
            when quantity is null or quantity <= 0 then 'non_positive_quantity'
            when unit_price is null or unit_price <= 0 then 'non_positive_price'
            when is_exact_duplicate then 'duplicate'
            else 'kept'
        end as row_class,
        quantity * unit_price as line_amount

    from flagged

),

final as (

    select
        classified.transaction_line_id,
        classified.invoice_id,
        classified.stock_code,
        classified.product_description,
        classified.quantity,
        classified.invoiced_at,
        classified.unit_price,
        classified.line_amount,
        classified.customer_id,
        classified.country,
        classified.row_class,
        -- From the seed: a class missing from it leaves is_kept null, which a test fails on.
        row_classes.is_kept,
        classified.is_non_product,
        classified.is_exact_duplicate,
        -- A product return: a cancellation line that is neither a non-product code (postage,
        -- discounts, manual adjustments) nor an exact copy of an earlier line.
        classified.row_class = 'cancellation'
        and not classified.is_non_product
        and not classified.is_exact_duplicate as is_product_return

    from classified
    left join row_classes on classified.row_class = row_classes.row_class

)

select * from final
