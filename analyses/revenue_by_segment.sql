-- Revenue, customers and the recommended action per k-means segment.
with

segment_profiles as (

    select * from {{ ref('segment_profiles') }}

)

select
    segment_name,
    n_customers,
    round(100 * share_of_customers, 1) as pct_customers,
    revenue,
    round(100 * share_of_revenue, 1) as pct_revenue,
    round(revenue / n_customers, 2) as revenue_per_customer,
    recommended_action
from segment_profiles
order by revenue desc
