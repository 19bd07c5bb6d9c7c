"""Property-based tests (hypothesis): scaling, cluster numbering and segment naming."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import DbtRun
from customer_segmentation.ml.kmeans import cluster_order
from customer_segmentation.ml.scaling import apply_scaling, fit_scaler, invert_scaling

FEATURES = ["a", "b", "c"]
finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


def spread_out(matrix: np.ndarray) -> bool:
    return bool(np.all(matrix.std(axis=0) > 1e-3 * (1 + np.abs(matrix).max(axis=0))))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(3, 40), st.just(3)), elements=finite))
def test_standard_scaling_without_clipping_standardises_and_inverts(matrix: np.ndarray) -> None:
    if not spread_out(matrix):
        return
    fitted = fit_scaler(matrix, FEATURES, ["b"], (0.0, 1.0), "standard")
    scaled = apply_scaling(matrix, fitted)
    assert np.allclose(scaled.mean(axis=0), 0, atol=1e-6)
    assert np.allclose(scaled.std(axis=0), 1, atol=1e-6)
    assert np.allclose(invert_scaling(scaled, fitted), matrix, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(5, 40), st.just(3)), elements=finite),
    st.floats(0.0, 0.3),
    st.floats(0.7, 1.0),
)
def test_scaled_values_stay_within_the_clip_bounds(
    matrix: np.ndarray, low: float, high: float
) -> None:
    if not spread_out(matrix):
        return
    try:
        fitted = fit_scaler(matrix, FEATURES, ["a", "c"], (low, high), "robust")
    except ValueError:
        return  # zero interquartile range: refused with a clear error, tested elsewhere
    scaled = apply_scaling(matrix, fitted)
    for j, p in enumerate(fitted):
        lower = (p.clip_lower - p.center) / p.scale
        upper = (p.clip_upper - p.center) / p.scale
        assert np.all(scaled[:, j] >= lower - 1e-9)
        assert np.all(scaled[:, j] <= upper + 1e-9)


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 10), st.integers(1, 4)), elements=finite),
    st.data(),
)
def test_cluster_order_is_a_permutation_independent_of_label_order(
    centers: np.ndarray, data: st.DataObject
) -> None:
    k, d = centers.shape
    order_index = data.draw(st.integers(0, d - 1))
    ids = cluster_order(centers, order_index)
    assert sorted(ids.tolist()) == list(range(1, k + 1))
    # Cluster 1 has the largest centroid of the order feature.
    assert centers[ids == 1, order_index][0] == centers[:, order_index].max()
    # Relabelling the clusters (sklearn's arbitrary order) moves the ids with them.
    permutation = np.array(data.draw(st.permutations(range(k))))
    permuted_ids = cluster_order(centers[permutation], order_index)
    if len({tuple(row) for row in centers}) == k:  # identical centres cannot be told apart
        assert np.array_equal(permuted_ids, ids[permutation])


# Segment naming: the compiled SQL of cluster_archetypes (the fit's naming), run on generated
# cluster profiles.

DIMENSIONS = ["recency", "frequency", "monetary", "tenure", "average_order_value", "return_rate"]


@pytest.fixture(scope="module")
def naming_sql(bundled_build: DbtRun) -> tuple[str, str]:
    """The SQL of cluster_archetypes as the shared build compiled (and ran) it, and its catalog."""
    compiled = next((bundled_build.workdir / "target" / "compiled").rglob("cluster_archetypes.sql"))
    # dbt-duckdb names the database after the file, up to the first dot.
    return compiled.read_text(), bundled_build.database.name.split(".")[0]


def naming_database(
    customers: list[tuple[int, int, list[float]]], targets: list[list[float]], catalog: str
) -> duckdb.DuckDBPyConnection:
    """Tables named as in the compiled SQL, filled with generated customers and archetypes."""
    # In memory, under the name of the database dbt compiled against.
    con = duckdb.connect()
    con.execute(f"attach ':memory:' as \"{catalog}\"")
    con.execute(f'use "{catalog}"')
    con.execute("create schema reference")
    con.execute(
        "create table main.customer_features (customer_id bigint, "
        "recency_days double, frequency double, monetary double, tenure_days double, "
        "average_order_value double, return_rate double)"
    )
    con.execute("create table main.customer_clusters (customer_id bigint, cluster_id bigint)")
    columns = ", ".join(f"target_{d}_z double" for d in DIMENSIONS)
    con.execute(
        "create table reference.segment_archetypes (archetype varchar, "
        f"archetype_order integer, segment_name varchar, description varchar, "
        f"recommended_action varchar, {columns})"
    )
    for customer_id, cluster_id, values in customers:
        con.execute(
            "insert into main.customer_features values (?, ?, ?, ?, ?, ?, ?)",
            [customer_id, *values],
        )
        con.execute(
            "insert into main.customer_clusters values (?, ?)",
            [customer_id, cluster_id],
        )
    for order, target in enumerate(targets, start=1):
        con.execute(
            "insert into reference.segment_archetypes values (?, ?, ?, 'd', 'a', ?, ?, ?, ?, ?, ?)",
            [f"a{order}", order, f"Name {order}", *target],
        )
    return con


value = st.floats(min_value=0, max_value=500, allow_nan=False)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(2, 6).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(st.lists(value, min_size=6, max_size=6), min_size=2 * k, max_size=4 * k),
        )
    ),
    st.lists(st.lists(st.floats(-3, 3), min_size=6, max_size=6), min_size=1, max_size=8),
)
def test_segment_names_are_unique_and_every_cluster_is_named(
    naming_sql: tuple[str, str],
    clusters: tuple[int, list[list[float]]],
    targets: list[list[float]],
) -> None:
    sql, catalog = naming_sql
    k, rows = clusters
    customers = [(i, i % k + 1, values) for i, values in enumerate(rows)]
    con = naming_database(customers, targets, catalog)
    named = con.execute(
        f"select cluster_id, segment_name, profile_distance from ({sql}) order by 1"
    ).fetchall()
    assert [row[0] for row in named] == list(range(1, k + 1))
    names = [row[1] for row in named]
    assert len(set(names)) == k
    matched = [row for row in named if row[2] is not None]
    assert len(matched) == min(k, len(targets))
    # Greedy: the nearest (cluster, archetype) pair of all is always matched.
    pairs = con.execute(f"select min(profile_distance) from ({sql})").fetchall()
    assert pairs[0][0] == pytest.approx(min(row[2] for row in matched))
    # Customers listed in another order give the same names.
    reordered = naming_database(list(reversed(customers)), targets, catalog)
    again = reordered.execute(f"select cluster_id, segment_name from ({sql}) order by 1").fetchall()
    assert again == [(row[0], row[1]) for row in named]
