{#- Fails when sum(column) over the model differs from the row count of another relation. -#}
{% test sums_to_row_count_of(model, column_name, compare_model) %}

with

summed as (

    select coalesce(sum({{ column_name }}), 0) as total from {{ model }}

),

counted as (

    select count(*) as total from {{ compare_model }}

)

select
    summed.total as summed_total,
    counted.total as compared_row_count
from summed
cross join counted
where summed.total != counted.total

{% endtest %}


{#-
    Fails when sum(column) over the model is not `value`, give or take `tolerance` (shares that
    add up to 1; with column_name "1", a row count).
-#}
{% test sums_to(model, column_name, value, tolerance=0) %}

with

summed as (

    select coalesce(sum({{ column_name }}), 0) as total from {{ model }}

)

select
    total,
    {{ value }} as expected_total
from summed
where abs(total - {{ value }}) > {{ tolerance }}

{% endtest %}
