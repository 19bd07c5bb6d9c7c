-- The weekday x hour heatmap of orders.
with

purchase_timing as (

    select * from {{ ref('purchase_timing') }}

),

final as (

    select
        iso_weekday,
        weekday_name,
        hour_of_day,
        n_orders,
        revenue

    from purchase_timing

)

select * from final
