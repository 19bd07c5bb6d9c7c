-- Five example lines of every class that is not kept, to see what the cleaning rules catch.
-- Run: dbt compile --select lines_dropped_by_class, then run the compiled SQL in DuckDB.
with

classified_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}

),

examples as (

    select
        row_class,
        transaction_line_id,
        invoice_id,
        stock_code,
        product_description,
        quantity,
        unit_price,
        customer_id,
        row_number() over (
            partition by row_class order by transaction_line_id asc
        ) as example_number

    from classified_lines
    where not is_kept

)

select * from examples
where example_number <= 5
order by row_class, example_number
