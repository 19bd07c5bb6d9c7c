-- The movement section's model line, one row: the model in use, its age, whether this build
-- refitted and what happened to the segments' ids.
with

plan as (

    select * from {{ ref('segment_model_plan') }}

),

segment_models as (

    select * from {{ ref('segment_models') }}

),

latest as (

    select max(model_id) as model_id from segment_models

),

final as (

    select
        segment_models.model_id,
        segment_models.fitted_at,
        segment_models.snapshot_date as fitted_on_snapshot_date,
        segment_models.k,
        plan.refit as is_refitted,
        plan.refit_reason,
        plan.registry_message,
        case when plan.refit then 0 else plan.previous_model_age_days end as model_age_days,
        case when plan.refit then segment_models.previous_model_id end as previous_model_id,
        case when plan.refit then segment_models.n_kept end as n_kept,
        case when plan.refit then segment_models.n_new end as n_new,
        case when plan.refit then segment_models.n_retired end as n_retired

    from segment_models
    inner join latest on segment_models.model_id = latest.model_id
    cross join plan

)

select * from final
