-- One row per row class (seed row_classes: the classes, their rule order and what each
-- matches), with the lines, customers and amount of each; classes with no lines get zeros.
with

classified_lines as (

    select * from {{ ref('int_transaction_lines_classified') }}

),

row_classes as (

    select * from {{ ref('row_classes') }}

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
        row_classes.description as rule_description,
        coalesce(counted.n_rows, 0) as n_rows,
        coalesce(counted.n_rows, 0) / sum(coalesce(counted.n_rows, 0)) over () as share_of_rows,
        coalesce(counted.n_customers, 0) as n_customers,
        round(coalesce(counted.amount, 0), 2) as amount

    from row_classes
    left join counted on row_classes.row_class = counted.row_class

)

select * from final
