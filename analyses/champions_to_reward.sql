-- The best customers to reward: in the highest-spending k-means segment and RFM champions or
-- loyal customers, leaving out outliers (unusual customers deserve a personal look instead).
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
    and not is_outlier
order by monetary desc
