-- Drift warning: a segment's mean distance to its centroid grew by more than var
-- drift_max_distance_growth, against the reference model's training data (segment_drift). A
-- warning, not an error: the build's tables are right for today's customers; the rows say what
-- moved and by how much.
{{ config(severity='warn') }}

select * from {{ ref('segment_drift') }}
where measure = 'mean_distance_growth' and is_drifted
