with

classified_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}

),

-- The classes in the order the rules are applied; classes with no lines still get a row.
row_classes as (

    select * from (
        values
        (1, 'missing_customer', 'no customer id (guest checkout); cannot be attributed'),
        (2, 'implausible_date', 'no date, or dated before or after the plausible range'),
        (3, 'adjustment', 'invoice starts with A: bad-debt or accounting adjustment'),
        (4, 'cancellation', 'invoice starts with C: cancelled or returned; used for returns'),
        (5, 'non_product', 'stock code in the non_product_stock_codes seed (postage, fees, ...)'),
        (6, 'non_positive_quantity', 'quantity zero or negative outside a cancellation invoice'),
        (7, 'non_positive_price', 'unit price zero or negative'),
        (8, 'duplicate', 'exact copy of an earlier line of the file; the first copy is kept'),
        (9, 'kept', 'a valid purchase line; the input to orders and customer features')
    ) as rules (rule_order, row_class, rule_description)  -- noqa: AL05

),

counted as (

    select
        row_class,
        count(*) as n_rows,
        count(distinct customer_id) as n_customers,
        sum(line_amount) as amount

    from classified_lines
    group by row_class

),

final as (

    select
        row_classes.rule_order,
        row_classes.row_class,
        row_classes.rule_description,
        coalesce(counted.n_rows, 0) as n_rows,
        coalesce(counted.n_rows, 0) / sum(coalesce(counted.n_rows, 0)) over () as share_of_rows,
        coalesce(counted.n_customers, 0) as n_customers,
        round(coalesce(counted.amount, 0), 2) as amount

    from row_classes
    left join counted on row_classes.row_class = counted.row_class

)

select * from final
