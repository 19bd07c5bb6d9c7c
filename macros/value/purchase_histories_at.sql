{#-
    The lifetime-value models' input as of one date, one row per customer with a purchase
    before it: x (repeat purchases: purchase days after the first), t_x (first to last
    purchase) and T, written t (first purchase to the date), in the unit of the var
    clv_time_unit, plus the values the spend model reads.

    as_of: the name of a relation or CTE with one row and a column as_of_date (date).
    orders: int_orders_aggregated; returned_lines: the lines with is_product_return. The
    caller imports them and passes their names, as for customer_features_at.

    A purchase is a day with at least one kept order: repeat purchases are counted in days, as
    the BG/NBD literature does, so two invoices of one customer on the same day (a forgotten
    item, a split basket) are one purchase and their values are summed.

    Returns are rarely tied to a purchase (Online Retail numbers cancellations on their own),
    so a customer's returns before the date are spread over their purchases in proportion to
    value: with monetary_basis net, each purchase counts at purchase_value x keep_ratio, where
    keep_ratio = net value / gross value (0 for a customer who returned everything).
-#}
{% macro purchase_histories_at(as_of, orders, returned_lines) %}
    {%- set days_per_unit = clv_days_per_unit() -%}
    {#- In doubles: DuckDB divides decimals as doubles, Spark as decimals of 6 places. -#}
    {%- set keep_ratio -%}
        case
            when gross_value > 0 then cast(net_value as double) / cast(gross_value as double)
            else 0
        end
    {%- endset %}

    with

    purchases_before as (

        select
            orders.customer_id,
            orders.order_date as purchase_date,
            max(as_of_dates.as_of_date) as as_of_date,
            sum(orders.order_value) as purchase_value

        from {{ orders }} as orders
        inner join {{ as_of }} as as_of_dates
            on orders.order_date < as_of_dates.as_of_date
        group by orders.customer_id, orders.order_date

    ),

    returns_before as (

        select
            returned_lines.customer_id,
            -sum(returned_lines.line_amount) as returned_value

        from {{ returned_lines }} as returned_lines
        inner join {{ as_of }} as as_of_dates
            on cast(returned_lines.invoiced_at as date) < as_of_dates.as_of_date
        group by returned_lines.customer_id

    ),

    purchase_summary as (

        select
            customer_id,
            max(as_of_date) as as_of_date,
            min(purchase_date) as first_purchase_date,
            max(purchase_date) as last_purchase_date,
            count(*) as n_purchases,
            sum(purchase_value) as gross_value,
            -- The spend model reads repeat purchases only: the first one is left out.
            sum(purchase_value) - min_by(purchase_value, purchase_date) as repeat_gross_value

        from purchases_before
        group by customer_id

    ),

    valued as (

        select
            purchase_summary.*,
            coalesce(returns_before.returned_value, 0) as returned_value,
            {%- if var('monetary_basis') == 'gross' %}
                purchase_summary.gross_value as net_value
            {%- else %}
                greatest(
                    purchase_summary.gross_value - coalesce(returns_before.returned_value, 0), 0
                ) as net_value
            {%- endif %}

        from purchase_summary
        left join returns_before on purchase_summary.customer_id = returns_before.customer_id

    )

    select
        customer_id,
        as_of_date,
        '{{ var("clv_time_unit") }}' as time_unit,
        first_purchase_date,
        last_purchase_date,
        n_purchases,
        n_purchases - 1 as x,
        cast({{ days_between('first_purchase_date', 'last_purchase_date') }} as double)
        / {{ days_per_unit }} as t_x,
        cast({{ days_between('first_purchase_date', 'as_of_date') }} as double)
        / {{ days_per_unit }} as t,
        cast(round(gross_value, 2) as double) as gross_value,
        cast(round(returned_value, 2) as double) as returned_value,
        cast(round(net_value, 2) as double) as net_value,
        {{ keep_ratio }} as keep_ratio,
        case
            when n_purchases > 1
                then cast(repeat_gross_value as double) * {{ keep_ratio }} / (n_purchases - 1)
        end as repeat_mean_value

    from valued
{% endmacro %}


{#- Days in one unit of the var clv_time_unit (day or week). -#}
{% macro clv_days_per_unit() -%}
    {{ return(7 if var('clv_time_unit') == 'week' else 1) }}
{%- endmacro %}
