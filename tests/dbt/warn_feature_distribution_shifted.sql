-- Drift warning: a clustering feature's population stability index is above var drift_max_psi,
-- against the reference model's training data (segment_drift). A warning, not an error: the
-- build's tables are right for today's customers; the rows say what moved and by how much.
{{ config(severity='warn') }}

select * from {{ ref('segment_drift') }}
where measure = 'population_stability_index' and is_drifted
