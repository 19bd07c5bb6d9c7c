{#-
    Adjusted Rand index and normalised mutual information (arithmetic-mean normalisation, as
    scikit-learn's default) between two labelings of the same rows, from their contingency
    table. relation has one row per item with columns left_column and right_column.
-#}
{% macro partition_agreement(relation, left_column, right_column) %}

    with

    cells as (

        select
            {{ left_column }} as left_label,
            {{ right_column }} as right_label,
            count(*) as n_ij

        from {{ relation }}
        group by all

    ),

    left_totals as (

        select
            left_label,
            sum(n_ij) as a_i
        from cells
        group by left_label

    ),

    right_totals as (

        select
            right_label,
            sum(n_ij) as b_j
        from cells
        group by right_label

    ),

    sums as (

        select
            (select sum(n_ij) from cells) as n,
            (select sum(n_ij * (n_ij - 1) / 2) from cells) as sum_pairs_cells,
            (select sum(a_i * (a_i - 1) / 2) from left_totals) as sum_pairs_left,
            (select sum(b_j * (b_j - 1) / 2) from right_totals) as sum_pairs_right,
            (
                select sum(cells.n_ij * ln(cells.n_ij * total.n / (l.a_i * r.b_j)))
                from cells
                inner join left_totals as l on cells.left_label = l.left_label
                inner join right_totals as r on cells.right_label = r.right_label
                cross join (select sum(n_ij) as n from cells) as total
            ) as n_times_mutual_information,
            (select -sum(a_i * ln(a_i)) from left_totals) as left_entropy_part,
            (select -sum(b_j * ln(b_j)) from right_totals) as right_entropy_part

    ),

    agreement as (

        select
            (
                sum_pairs_cells - sum_pairs_left * sum_pairs_right / (n * (n - 1) / 2)
            ) / nullif(
                (sum_pairs_left + sum_pairs_right) / 2
                - sum_pairs_left * sum_pairs_right / (n * (n - 1) / 2),
                0
            ) as adjusted_rand_index,
            -- H = ln(n) - sum(c ln c) / n; NMI = I / mean(H_left, H_right).
            (n_times_mutual_information / n) / nullif(
                (
                    (ln(n) + left_entropy_part / n) + (ln(n) + right_entropy_part / n)
                ) / 2,
                0
            ) as normalized_mutual_information

        from sums

    )

    select * from agreement

{% endmacro %}
