-- Customers worth winning back: they spent well (m_score 4-5, net of returns) but have not
-- ordered for a long time (r_score 1-2), most valuable first. Customers left out of audiences
-- (returned everything, high return rate, outliers: suppression_reason) are not listed.
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
    net_monetary,
    country
from customer_segments
where r_score <= 2 and m_score >= 4 and suppression_reason is null
order by monetary desc
