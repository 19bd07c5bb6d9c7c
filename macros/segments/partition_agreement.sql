{#-
    Adjusted Rand index and normalised mutual information (arithmetic-mean normalisation, as
    scikit-learn's default) between two labelings of the same rows, from their contingency
    table. relation has one row per item with columns left_column and right_column; rows
    where either is null are left out (no rows: null).
-#}
{% macro partition_agreement(relation, left_column, right_column) %}

    with

    cells as (

        select
            {{ left_column }} as left_label,
            {{ right_column }} as right_label,
            count(*) as n_ij

        from {{ relation }}
        -- Rows without both labels do not count (no Ward cluster when scoring with a registered
        -- model: then there is no agreement to report, and the result is null).
        where {{ left_column }} is not null and {{ right_column }} is not null
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

    cell_sums as (

        select
            sum(n_ij) as n,
            sum(n_ij * (n_ij - 1) / 2) as sum_pairs_cells
        from cells

    ),

    left_sums as (

        select
            sum(a_i * (a_i - 1) / 2) as sum_pairs_left,
            -sum(a_i * ln(a_i)) as left_entropy_part
        from left_totals

    ),

    right_sums as (

        select
            sum(b_j * (b_j - 1) / 2) as sum_pairs_right,
            -sum(b_j * ln(b_j)) as right_entropy_part
        from right_totals

    ),

    mutual_information as (

        select
            sum(
                cells.n_ij
                * ln(cells.n_ij * cell_sums.n / (left_totals.a_i * right_totals.b_j))
            ) as n_times_mutual_information
        from cells
        inner join left_totals on cells.left_label = left_totals.left_label
        inner join right_totals on cells.right_label = right_totals.right_label
        cross join cell_sums

    ),

    sums as (

        select
            cell_sums.n,
            cell_sums.sum_pairs_cells,
            left_sums.sum_pairs_left,
            right_sums.sum_pairs_right,
            mutual_information.n_times_mutual_information,
            left_sums.left_entropy_part,
            right_sums.right_entropy_part
        from cell_sums
        cross join left_sums
        cross join right_sums
        cross join mutual_information

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
