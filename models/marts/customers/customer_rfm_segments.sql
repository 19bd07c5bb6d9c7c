with

customer_features as (

    select * from {{ ref('customer_features') }}

),

thresholds as (

    select * from {{ ref('rfm_thresholds') }}

),

segment_map as (

    select * from {{ ref('rfm_segment_map') }}

),

segments as (

    select * from {{ ref('rfm_segments') }}

),

dimension_values as (

    {{ rfm_dimension_values('customer_features') }}

),

-- A value gets the score whose range (lower_bound, upper_bound] holds it.
dimension_scores as (

    select
        dimension_values.customer_id,
        dimension_values.dimension,
        thresholds.score

    from dimension_values
    inner join thresholds
        on
            dimension_values.dimension = thresholds.dimension
            and (
                thresholds.lower_bound is null
                or dimension_values.dimension_value > thresholds.lower_bound
            )
            and (
                thresholds.upper_bound is null
                or dimension_values.dimension_value <= thresholds.upper_bound
            )

),

scored as (

    select
        customer_features.customer_id,
        customer_features.snapshot_date,
        customer_features.recency_days,
        customer_features.frequency,
        customer_features.monetary,
        max(dimension_scores.score) filter (where dimension_scores.dimension = 'recency')
            as r_score,
        max(dimension_scores.score) filter (where dimension_scores.dimension = 'frequency')
            as f_score,
        max(dimension_scores.score) filter (where dimension_scores.dimension = 'monetary')
            as m_score

    from customer_features
    inner join dimension_scores
        on customer_features.customer_id = dimension_scores.customer_id
    group by all

),

final as (

    select
        scored.customer_id,
        scored.snapshot_date,
        scored.recency_days,
        scored.frequency,
        scored.monetary,
        scored.r_score,
        scored.f_score,
        scored.m_score,
        cast(scored.r_score as {{ dbt.type_string() }})
        || cast(scored.f_score as {{ dbt.type_string() }})
        || cast(scored.m_score as {{ dbt.type_string() }}) as rfm_cell,
        segment_map.rfm_segment,
        segments.segment_label as rfm_segment_label,
        segments.description as rfm_segment_description,
        segments.recommended_action

    from scored
    inner join segment_map
        on
            scored.r_score = segment_map.r_score
            and scored.f_score = segment_map.f_score
    inner join segments on segment_map.rfm_segment = segments.rfm_segment

)

select * from final
