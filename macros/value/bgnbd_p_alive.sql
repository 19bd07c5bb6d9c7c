{#-
    P(alive), the BG/NBD probability that a customer has not dropped out, in SQL: a select of
    every column of `histories` plus p_alive, for any relation or CTE with columns x, t_x and t
    (T) in the time unit of the fit.

        P(alive) = 1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x))

    clv_model_parameters: the relation of the fitted parameters (pass ref('clv_model_parameters')
    or an import CTE); fit: 'snapshot' or 'calibration'. p_alive is null when that fit has no
    usable parameters (its null_reason says why). Tested equal to the Python values for every
    customer (tests/dbt/assert_sql_p_alive_matches_python.sql).
-#}
{% macro bgnbd_p_alive(histories, clv_model_parameters, fit='snapshot') %}
    {#- The log odds of having dropped out: the power overflows a double for a frequent
        customer long gone, so the odds are compared in logs. -#}
    {%- set log_odds -%}
        (
            ln(bg_nbd_parameters.a)
            - ln(bg_nbd_parameters.b + histories.x - 1)
            + (bg_nbd_parameters.r + histories.x)
            * (
                ln(bg_nbd_parameters.alpha + histories.t)
                - ln(bg_nbd_parameters.alpha + histories.t_x)
            )
        )
    {%- endset %}

    with

    bg_nbd_parameters as (

        select
            max(estimate) filter (where parameter = 'r') as r,
            max(estimate) filter (where parameter = 'alpha') as alpha,
            max(estimate) filter (where parameter = 'a') as a,
            max(estimate) filter (where parameter = 'b') as b,
            count(*) filter (where null_reason is not null or estimate is null) as n_unusable

        from {{ clv_model_parameters }}
        where model = 'bg_nbd' and fit = '{{ fit }}'

    )

    select
        histories.*,
        case
            when bg_nbd_parameters.n_unusable > 0 or bg_nbd_parameters.r is null then null
            when histories.x = 0 then 1.0
            when {{ log_odds }} > 700 then 0.0
            else 1 / (1 + exp({{ log_odds }}))
        end as p_alive

    from {{ histories }} as histories
    cross join bg_nbd_parameters

{% endmacro %}
