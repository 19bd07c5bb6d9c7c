-- The cleaning audit chart: raw lines per cleaning class, in the order the rules apply.
with

data_quality_audit as (

    select * from {{ ref('data_quality_audit') }}

),

final as (

    select
        rule_order,
        row_class,
        rule_description,
        n_rows,
        share_of_rows,
        n_customers,
        amount

    from data_quality_audit

)

select * from final
