-- Quintile thresholds of recency, frequency and monetary over all customers, as value ranges
-- per score. Scores come from values, not row positions, so equal values always get equal
-- scores; where ties make two thresholds equal, the score between them is empty.
with

customer_features as (

    select * from {{ ref('customer_features') }}

),

dimension_values as (

    {{ rfm_dimension_values('customer_features') }}

),

quintiles as (

    select
        dimension,
        quantile_disc(dimension_value, [0.2, 0.4, 0.6, 0.8]) as cut_points

    from dimension_values
    group by dimension

),

-- Bin b holds values in (cut b-1, cut b]; bin 1 has no lower bound and bin 5 no upper bound.
bins as (

    select
        quintiles.dimension,
        bin_numbers.bin,
        case when bin_numbers.bin > 1 then quintiles.cut_points[bin_numbers.bin - 1] end
            as lower_bound,
        case when bin_numbers.bin < 5 then quintiles.cut_points[bin_numbers.bin] end
            as upper_bound

    from quintiles
    cross join range(1, 6) as bin_numbers (bin)

),

counted as (

    select
        bins.dimension,
        bins.bin,
        bins.lower_bound,
        bins.upper_bound,
        count(dimension_values.dimension_value) as n_customers

    from bins
    left join dimension_values
        on
            bins.dimension = dimension_values.dimension
            and (bins.lower_bound is null or bins.lower_bound < dimension_values.dimension_value)
            and (bins.upper_bound is null or bins.upper_bound >= dimension_values.dimension_value)
    group by all

),

final as (

    select
        dimension,
        -- Recent is good: the lowest recency bin scores 5.
        case when dimension = 'recency' then 6 - bin else bin end as score,
        lower_bound,
        upper_bound,
        n_customers

    from counted

)

select * from final
order by dimension, score
