-- The cohort retention heatmap: month 0 (100% by definition) left out.
with

cohort_retention as (

    select * from {{ ref('cohort_retention') }}

),

after_first_month as (

    select * from cohort_retention
    where months_since_first_purchase > 0

),

final as (

    select
        cohort_month,
        months_since_first_purchase,
        cohort_customers,
        n_active_customers,
        retention_rate

    from after_first_month

)

select * from final
