{#-
    Customer features as of one or more snapshot dates, in one pass.

    snapshots: the name of a relation or CTE with a column `snapshot_date` (date). For each
    snapshot, only orders and lines dated before it count, so the same SQL gives today's features
    (customer_features) and past ones (segment migration). Returns a select with one row per
    (snapshot_date, customer_id) for customers with at least one kept order before the snapshot.
    Definitions: the `customer_feature_definitions` docs block.

    The caller imports the inputs and passes their names (relations or CTEs), so its model shows
    them: orders (int_orders_aggregated), customer_products (int_customer_products_aggregated:
    each product's first purchase by each customer) and returned_lines
    (int_transaction_lines_classified where is_product_return).
-#}
{% macro customer_features_at(
    snapshots, orders, customer_products, returned_lines, columns=none, many_snapshots=false
) %}
    {#- columns: the feature columns the caller reads (none: all). main_country and
        preferred_order_hour each take a group-by and a window over every (snapshot, order)
        pair, so they are computed only when asked for.
        many_snapshots: the caller passes several snapshot dates (the migration history's
        seven): the pairs are first counted per customer and day, so each snapshot joins those
        counts (a row per day a customer bought something new) instead of every pair; with one
        snapshot that extra group-by costs more than it saves (at 2M customers, 7 s saved in the
        history, 5 s lost in customer_features). -#}
    {%- set with_country = columns is none or 'main_country' in columns -%}
    {%- set with_hour = columns is none or 'preferred_order_hour' in columns -%}

    with

    -- The gap to the previous order is the same as of every snapshot that sees both orders
    -- (the orders before a date are a prefix of the customer's orders), so it is computed once
    -- per order rather than once per (snapshot, order).
    sequenced_orders as (

        select
            *,
            {{ days_between(
                'lag(order_date) over (
                    partition by customer_id order by ordered_at asc, invoice_id asc
                )',
                'order_date'
            ) }} as days_since_previous_order

        from {{ orders }}

    ),

    snapshot_orders as (

        select
            snapshot_dates.snapshot_date,
            sequenced_orders.*

        from {{ snapshots }} as snapshot_dates
        inner join sequenced_orders on snapshot_dates.snapshot_date > sequenced_orders.order_date

    ),

    -- Returns of products (is_product_return: duplicated cancellation lines and non-product
    -- codes such as postage, discounts, manual adjustments are not returns).
    returns as (

        select
            customer_id,
            cast(invoiced_at as date) as return_date,
            -line_amount as returned_amount

        from {{ returned_lines }}

    ),

    -- Each product's first purchase by each customer: distinct products as of any date come
    -- from these pairs (or their counts per day), so no line is joined to every snapshot.
    {% if many_snapshots -%}
    new_products as (

        select
            customer_id,
            first_purchase_date,
            count(*) as n_new_products

        from {{ customer_products }}
        group by customer_id, first_purchase_date

    ),

    product_counts as (

        select
            snapshot_dates.snapshot_date,
            new_products.customer_id,
            cast(sum(new_products.n_new_products) as bigint) as distinct_products

        from {{ snapshots }} as snapshot_dates
        inner join new_products
            on snapshot_dates.snapshot_date > new_products.first_purchase_date
        group by all

    ),
    {%- else -%}
    product_counts as (

        select
            snapshot_dates.snapshot_date,
            first_purchases.customer_id,
            count(*) as distinct_products

        from {{ snapshots }} as snapshot_dates
        inner join {{ customer_products }} as first_purchases
            on snapshot_dates.snapshot_date > first_purchases.first_purchase_date
        group by all

    ),
    {%- endif %}

    returned_values as (

        select
            snapshot_dates.snapshot_date,
            returns.customer_id,
            sum(returns.returned_amount) as returned_value

        from {{ snapshots }} as snapshot_dates
        inner join returns on snapshot_dates.snapshot_date > returns.return_date
        group by all

    ),

    order_summary as (

        select
            snapshot_date,
            customer_id,
            min(order_date) as first_order_date,
            max(order_date) as last_order_date,
            count(*) as frequency,
            sum(order_value) as monetary,
            sum(n_items) as n_items,
            avg(days_since_previous_order) as mean_days_between_orders,
            median(days_since_previous_order) as median_days_between_orders,
            count(*) filter (
                where order_date >= {{ add_days('snapshot_date', -90) }}
            ) as n_orders_last_90_days,
            count(*) filter (
                where {{ iso_weekday('ordered_at') }} in (6, 7)
            ) as n_weekend_orders,
            -- Integer minutes: an exact sum, whatever the row order.
            avg(60 * hour(ordered_at) + minute(ordered_at)) / 60 as mean_order_hour

        from snapshot_orders
        group by snapshot_date, customer_id

    ),

    {% if with_country -%}
    country_counts as (

        select
            snapshot_date,
            customer_id,
            coalesce(country, 'Unknown') as country,
            count(*) as n_orders

        from snapshot_orders
        group by all

    ),

    main_countries as (

        select
            snapshot_date,
            customer_id,
            country as main_country

        from country_counts
        qualify row_number() over (
            partition by snapshot_date, customer_id
            order by n_orders desc, country asc
        ) = 1

    ),
    {%- endif %}

    {% if with_hour -%}
    hour_counts as (

        select
            snapshot_date,
            customer_id,
            hour(ordered_at) as order_hour,
            count(*) as n_orders

        from snapshot_orders
        group by all

    ),

    preferred_hours as (

        select
            snapshot_date,
            customer_id,
            order_hour as preferred_order_hour

        from hour_counts
        qualify row_number() over (
            partition by snapshot_date, customer_id
            order by n_orders desc, order_hour asc
        ) = 1

    ),
    {%- endif %}

    line_summary as (

        select
            product_counts.snapshot_date,
            product_counts.customer_id,
            product_counts.distinct_products,
            coalesce(returned_values.returned_value, 0) as returned_value

        from product_counts
        left join returned_values
            on
                product_counts.snapshot_date = returned_values.snapshot_date
                and product_counts.customer_id = returned_values.customer_id

    )

    select
        order_summary.customer_id,
        order_summary.snapshot_date,
        order_summary.first_order_date,
        order_summary.last_order_date,
        {{ days_between('order_summary.last_order_date', 'order_summary.snapshot_date') }}
            as recency_days,
        order_summary.frequency,
        -- monetary is what every value figure uses (M score, clustering, shares, profiles):
        -- net of returns by default (var monetary_basis), and never below 0, since a customer
        -- who returned more than the data shows them buying is worth nothing, not less.
        {%- if var('monetary_basis') == 'gross' %}
            cast(round(order_summary.monetary, 2) as double) as monetary,
        {%- else %}
            cast(
                round(greatest(order_summary.monetary - line_summary.returned_value, 0), 2)
                as double
            ) as monetary,
        {%- endif %}
        cast(round(order_summary.monetary, 2) as double) as gross_monetary,
        cast(round(order_summary.monetary - line_summary.returned_value, 2) as double)
            as net_monetary,
        {{ days_between('order_summary.first_order_date', 'order_summary.snapshot_date') }}
            as tenure_days,
        -- Divided in double precision and rounded to cents with the same IEEE operations on
        -- every engine (round() of a double differs between DuckDB and Spark at half cents).
        {%- if var('monetary_basis') == 'gross' %}
            floor(cast(order_summary.monetary as double) / order_summary.frequency * 100 + 0.5)
            / 100 as average_order_value,
        {%- else %}
            floor(
                cast(greatest(order_summary.monetary - line_summary.returned_value, 0) as double)
                / order_summary.frequency * 100 + 0.5
            ) / 100 as average_order_value,
        {%- endif %}
        order_summary.n_items / order_summary.frequency as average_items_per_order,
        line_summary.distinct_products,
        order_summary.mean_days_between_orders,
        order_summary.median_days_between_orders,
        cast(round(line_summary.returned_value, 2) as double) as returned_value,
        -- Of gross spend, whatever the basis: the share of what was bought that came back.
        cast(line_summary.returned_value as double) / cast(order_summary.monetary as double)
            as return_rate,
        order_summary.n_orders_last_90_days / order_summary.frequency
            as share_of_orders_last_90_days,
        order_summary.n_weekend_orders / order_summary.frequency as weekend_share_of_orders,
        order_summary.mean_order_hour
        {%- if with_hour %},
            preferred_hours.preferred_order_hour
        {%- endif %}
        {%- if with_country %},
            main_countries.main_country
        {%- endif %}

    from order_summary
    inner join line_summary
        on
            order_summary.snapshot_date = line_summary.snapshot_date
            and order_summary.customer_id = line_summary.customer_id
    {% if with_country -%}
        inner join main_countries
            on
                order_summary.snapshot_date = main_countries.snapshot_date
                and order_summary.customer_id = main_countries.customer_id
    {%- endif %}
    {% if with_hour -%}
        inner join preferred_hours
            on
                order_summary.snapshot_date = preferred_hours.snapshot_date
                and order_summary.customer_id = preferred_hours.customer_id
    {%- endif %}

{% endmacro %}
