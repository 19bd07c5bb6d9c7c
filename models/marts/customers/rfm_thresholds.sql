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
        percentile_disc(0.2) within group (order by dimension_value) as cut_1,
        percentile_disc(0.4) within group (order by dimension_value) as cut_2,
        percentile_disc(0.6) within group (order by dimension_value) as cut_3,
        percentile_disc(0.8) within group (order by dimension_value) as cut_4

    from dimension_values
    group by dimension

),

bin_numbers as (

    {{ integer_range(1, 6, 'bin') }}

),

-- Bin b holds values in (cut b-1, cut b]; bin 1 has no lower bound and bin 5 no upper bound.
bins as (

    select
        quintiles.dimension,
        bin_numbers.bin,
        case bin_numbers.bin
            when 2 then quintiles.cut_1
            when 3 then quintiles.cut_2
            when 4 then quintiles.cut_3
            when 5 then quintiles.cut_4
        end as lower_bound,
        case bin_numbers.bin
            when 1 then quintiles.cut_1
            when 2 then quintiles.cut_2
            when 3 then quintiles.cut_3
            when 4 then quintiles.cut_4
        end as upper_bound

    from quintiles
    cross join bin_numbers

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
