-- The revenue by country chart: the countries with the most revenue.
{%- set n_countries = 15 %}

with

country_summary as (

    select * from {{ ref('country_summary') }}

),

largest_countries as (

    select * from country_summary
    where revenue_rank <= {{ n_countries }}

),

final as (

    select
        country,
        n_customers,
        revenue,
        share_of_revenue,
        revenue_rank

    from largest_countries

)

select * from final
