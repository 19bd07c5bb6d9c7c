-- The drift chart: every measure of segment_drift against its threshold.
with

segment_drift as (

    select * from {{ ref('segment_drift') }}

),

final as (

    select
        measure,
        subject,
        segment_id,
        reference_model_id,
        current_model_id,
        reference_value,
        current_value,
        drift,
        threshold,
        drift / threshold as share_of_threshold,
        is_drifted

    from segment_drift

)

select * from final
