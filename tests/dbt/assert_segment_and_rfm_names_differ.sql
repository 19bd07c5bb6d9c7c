-- The k-means archetypes and the RFM segments are two views of the customers with two
-- vocabularies: a name in both (say "Champions") would make a marketer take one group for the
-- other. Fails on any name shared, compared case- and blank-insensitively.
with

archetypes as (

    select * from {{ ref('segment_archetypes') }}

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

)

select
    archetypes.segment_name as archetype_name,
    rfm_segments.segment_label as rfm_segment_label

from archetypes
inner join rfm_segments
    on lower(trim(archetypes.segment_name)) = lower(trim(rfm_segments.segment_label))
