-- Drift warning: a segment's share of customers moved by more points than var
-- drift_max_share_points, against the reference model's training data (segment_drift). A warning,
-- not an error: the build's tables are right for today's customers; the rows say what moved and by
-- how much.
{{ config(severity='warn') }}

select * from {{ ref('segment_drift') }}
where measure = 'segment_share_points' and is_drifted
