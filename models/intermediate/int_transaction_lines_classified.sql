-- Every raw line gets exactly one row_class; the first matching rule wins (see the
-- `row_classes` docs block for the order and why).
with

lines as (

    select * from {{ ref('stg_online_retail__transaction_lines') }}

),

non_product_codes as (

    select * from {{ ref('non_product_stock_codes') }}

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
                and starts_with(
                    upper(distinct_codes.stock_code), upper(non_product_codes.stock_code)
                )
            )

),

flagged as (

    select
        lines.*,
        non_product_matches.stock_code is not null as is_non_product,
        -- Exact copy of an earlier line of the file: every column equal (nulls count as
        -- equal). min() over the partition needs no sort, unlike row_number().
        lines.transaction_line_id != min(lines.transaction_line_id) over (
            partition by
                lines.invoice_id,
                lines.stock_code,
                lines.product_description,
                lines.quantity,
                lines.invoiced_at,
                lines.unit_price,
                lines.customer_id,
                lines.country
        ) as is_exact_duplicate

    from lines
    left join non_product_matches on lines.stock_code = non_product_matches.stock_code

),

classified as (

    select
        *,
        case
            when customer_id is null then 'missing_customer'
            when starts_with(upper(invoice_id), 'A') then 'adjustment'
            when starts_with(upper(invoice_id), 'C') then 'cancellation'
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
        transaction_line_id,
        invoice_id,
        stock_code,
        product_description,
        quantity,
        invoiced_at,
        unit_price,
        line_amount,
        customer_id,
        country,
        row_class,
        row_class = 'kept' as is_kept,
        is_non_product,
        is_exact_duplicate

    from classified

)

select * from final
