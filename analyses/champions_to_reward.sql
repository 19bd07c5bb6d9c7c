-- The best customers to reward: in the highest-spending k-means segment and RFM champions or
-- loyal customers, leaving out everyone suppressed from audiences: outliers (unusual customers
-- deserve a personal look instead), and customers who returned everything or much of it.
with

customer_segments as (

    select * from {{ ref('customer_segments') }}

)

select
    customer_id,
    segment_name,
    rfm_segment,
    recency_days,
    frequency,
    monetary,
    country
from customer_segments
where
    cluster_id = 1
    and rfm_segment in ('champions', 'loyal_customers')
    and suppression_reason is null
order by monetary desc
