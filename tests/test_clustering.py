from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.cluster.hierarchy import cut_tree, linkage
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from threadpoolctl import threadpool_info, threadpool_limits

from customer_segmentation.ml.kmeans import (
    ClusteringError,
    cluster_order,
    fit_kmeans,
    fit_kmeans_sweep,
    nearest_centroid,
)
from customer_segmentation.ml.parallel import map_single_threaded
from customer_segmentation.ml.sampling import bootstrap_samples
from customer_segmentation.ml.selection import stability_from_refits
from customer_segmentation.ml.stability import kmeans_refits
from customer_segmentation.ml.ward import cut_linkage, fit_ward, weighted_ward_linkage
from helpers import blobs


def test_kmeans_recovers_planted_blobs() -> None:
    points, truth = blobs()
    fit = fit_kmeans(points, 4, random_state=0, n_init=10)
    assert adjusted_rand_score(truth, fit.labels) >= 0.9


def test_sweep_fits_each_k_as_a_single_threaded_sklearn_fit() -> None:
    points, _ = blobs(n_per_cluster=300)
    points = points + np.random.default_rng(9).normal(scale=0.5, size=points.shape)
    ks = [2, 3, 4, 5, 6]
    fits = fit_kmeans_sweep(points, ks, random_state=4, n_init=3)
    assert list(fits) == ks
    for k in ks:
        with threadpool_limits(limits=1):
            reference = KMeans(n_clusters=k, n_init=3, random_state=4).fit(points)
        assert np.array_equal(fits[k].labels, reference.labels_)
        assert np.allclose(fits[k].centers, reference.cluster_centers_, rtol=0, atol=1e-12)
        assert fits[k].inertia == pytest.approx(reference.inertia_, rel=1e-12)


def test_map_single_threaded_keeps_order_limits_each_worker_and_restores() -> None:
    before = [(pool["user_api"], pool["num_threads"]) for pool in threadpool_info()]
    seen = map_single_threaded(lambda item: (item, _openmp_effective_n_threads()), list(range(6)))
    assert [item for item, _ in seen] == list(range(6))
    # OpenMP's limit is per thread: each worker must have set its own.
    assert {threads for _, threads in seen} == {1}
    assert [(pool["user_api"], pool["num_threads"]) for pool in threadpool_info()] == before


def test_map_single_threaded_passes_errors_on() -> None:
    def fail_on_three(item: int) -> int:
        if item == 3:
            raise ClusteringError("three")
        return item

    with pytest.raises(ClusteringError, match="three"):
        map_single_threaded(fail_on_three, [1, 2, 3, 4])


def test_kmeans_stability_is_high_at_the_planted_k_and_leaves_warning_filters_alone() -> None:
    points, _ = blobs()
    bootstraps = bootstrap_samples(len(points), 200, 4, random_state=0)
    filters = list(warnings.filters)
    refits = kmeans_refits(
        points, [2, 4, 9], bootstraps, np.arange(len(points)), random_state=0, n_init=3
    )
    assert list(refits) == [2, 4, 9]
    assert all(len(labelings) == 4 for labelings in refits.values())
    stability = stability_from_refits({("kmeans", k): v for k, v in refits.items()})
    stability = {k: stability["kmeans", k] for k in refits}
    assert stability[4] >= 0.95
    assert stability[9] < stability[4]
    assert warnings.filters == filters


@pytest.mark.parametrize("seed", range(12))
def test_cut_linkage_equals_scipy_cut_tree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    points = rng.normal(size=(n, 3))
    if seed % 3 == 0:
        # Repeated rows (as in bootstrap samples): merges at height 0, ties in the order.
        points = np.repeat(points[: max(1, n // 3)], 3, axis=0)[:n]
    tree = linkage(points, method="ward")
    ks = list(range(1, min(n, 12) + 1))
    assert np.array_equal(cut_linkage(tree, ks), cut_tree(tree, n_clusters=ks))


def test_ward_recovers_planted_blobs_exactly_and_on_micro_clusters() -> None:
    points, truth = blobs()
    exact = fit_ward(points, exact_max_rows=10_000, n_micro_clusters=40, random_state=0)
    micro = fit_ward(points, exact_max_rows=100, n_micro_clusters=40, random_state=0)
    assert exact.method == "exact"
    assert micro.method == "micro_clusters"
    assert adjusted_rand_score(truth, exact.labels(4)) >= 0.9
    assert adjusted_rand_score(truth, micro.labels(4)) >= 0.9


def test_weighted_ward_with_unit_weights_equals_scipy_ward() -> None:
    points = np.random.default_rng(3).normal(size=(60, 4))
    ours = weighted_ward_linkage(points, np.ones(60))
    scipy_ward = linkage(points, method="ward")
    assert np.allclose(ours[:, 2], scipy_ward[:, 2])
    assert np.array_equal(ours[:, 3], scipy_ward[:, 3])
    assert np.array_equal(ours[:, :2], scipy_ward[:, :2])


def test_weighted_ward_equals_ward_on_repeated_points() -> None:
    # A micro-cluster of w identical points is the point with weight w.
    rng = np.random.default_rng(5)
    distinct = rng.normal(size=(25, 3))
    weights = rng.integers(1, 5, size=25)
    repeated = np.repeat(distinct, weights, axis=0)
    ours = weighted_ward_linkage(distinct, weights)
    exact = linkage(repeated, method="ward")
    nonzero = exact[:, 2] > 1e-12  # merges of identical copies happen at height 0
    assert np.allclose(np.sort(ours[:, 2]), np.sort(exact[nonzero, 2]))


def test_micro_cluster_ward_equals_exact_ward_when_every_point_is_a_micro_cluster() -> None:
    points, _ = blobs(n_per_cluster=20)
    exact = fit_ward(points, exact_max_rows=10_000, n_micro_clusters=80, random_state=0)
    micro = fit_ward(points, exact_max_rows=10, n_micro_clusters=80, random_state=0)
    for k in (2, 3, 4, 6):
        assert adjusted_rand_score(exact.labels(k), micro.labels(k)) == 1.0


def test_cluster_ids_do_not_depend_on_sklearn_label_order() -> None:
    points, _ = blobs()
    ids = []
    for seed in (0, 1, 2, 3):
        fit = fit_kmeans(points, 4, random_state=seed, n_init=1)
        new_ids = cluster_order(fit.centers, order_index=2)
        ids.append(new_ids[fit.labels])
    for other in ids[1:]:
        assert np.array_equal(ids[0], other)


def test_cluster_order_is_by_descending_order_feature_then_the_others() -> None:
    centers = np.array([[0.0, 1.0], [5.0, 3.0], [9.0, 1.0], [1.0, 3.0]])
    # Column 1 descending; the tie at 3 goes to the larger column 0 (5 before 1).
    assert cluster_order(centers, order_index=1).tolist() == [4, 1, 3, 2]


def test_same_rows_in_any_order_give_identical_fits_once_sorted() -> None:
    points, _ = blobs()
    ids = np.arange(len(points))
    shuffled = np.random.default_rng(9).permutation(len(points))
    order = np.argsort(ids[shuffled])  # what read_matrix's ORDER BY customer_id does
    refit = fit_kmeans(points[shuffled][order], 4, random_state=0, n_init=10)
    fit = fit_kmeans(points, 4, random_state=0, n_init=10)
    assert np.array_equal(fit.centers, refit.centers)
    assert np.array_equal(fit.labels, refit.labels)


def test_nearest_centroid_prefers_the_lowest_index_on_ties() -> None:
    centers = np.array([[0.0, 0.0], [2.0, 0.0]])
    labels, distances = nearest_centroid(np.array([[1.0, 0.0], [1.9, 0.0]]), centers)
    assert labels.tolist() == [0, 1]
    assert np.allclose(distances, [1.0, 0.1])


def test_fewer_customers_than_k_is_a_clear_error() -> None:
    with pytest.raises(ClusteringError, match="3 customer\\(s\\) cannot form 4 clusters"):
        fit_kmeans(np.zeros((3, 2)), 4, random_state=0, n_init=1)


def test_too_few_distinct_customers_is_a_clear_error() -> None:
    points = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    with pytest.raises(ClusteringError, match="fewer than 3 distinct feature vectors"):
        fit_kmeans(points, 3, random_state=0, n_init=1)


def test_silhouettes_do_not_depend_on_label_names() -> None:
    from sklearn.metrics import silhouette_samples

    from customer_segmentation.ml.metrics import silhouette_values

    points, truth = blobs(n_per_cluster=30)
    renamed = np.array([7, 3, 9, 1])[truth]
    assert np.allclose(silhouette_values(points, renamed), silhouette_samples(points, truth))
    assert np.allclose(silhouette_values(points, truth), silhouette_values(points, renamed))


def test_silhouettes_of_many_labelings_equal_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.metrics import silhouette_samples

    from customer_segmentation.ml import metrics
    from customer_segmentation.ml.metrics import silhouettes

    points, truth = blobs(n_per_cluster=40)
    # Repeated rows, a customer alone in its cluster and labels with gaps: the edge cases of
    # sklearn's definition.
    points = np.vstack([points, points[:5]])
    truth = np.concatenate([truth, truth[:5]])
    alone = truth.copy()
    alone[0] = 9
    labelings = [truth, alone, np.arange(len(points)) % 2, np.where(truth == 1, 5, truth)]
    # 16 distance rows per chunk: several chunks, the last one shorter.
    monkeypatch.setattr(metrics, "CHUNK_BYTES", 8 * len(points) * 16)
    for values, labels in zip(silhouettes(points, labelings), labelings, strict=True):
        assert np.allclose(values, silhouette_samples(points, labels), rtol=0, atol=1e-9)
    assert silhouettes(points, labelings)[1][0] == 0.0


def test_partition_scores_equal_sklearn() -> None:
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    from customer_segmentation.ml.metrics import partition_metrics

    points, truth = blobs(n_per_cluster=50)
    rng = np.random.default_rng(3)
    labelings = [
        truth,
        np.where(truth == 2, 7, truth),  # labels with a gap
        rng.integers(0, 5, len(points)),  # overlapping clusters
        (points[:, 0] > np.median(points[:, 0])).astype(int),
    ]
    for labels in labelings:
        metrics = partition_metrics(points, labels)
        assert metrics["calinski_harabasz"] == pytest.approx(
            calinski_harabasz_score(points, labels), rel=1e-9
        )
        assert metrics["davies_bouldin"] == pytest.approx(
            davies_bouldin_score(points, labels), rel=1e-9
        )
        means = {label: points[labels == label].mean(axis=0) for label in np.unique(labels)}
        inertia = sum(
            ((row - means[label]) ** 2).sum() for row, label in zip(points, labels, strict=True)
        )
        assert metrics["inertia"] == pytest.approx(inertia, rel=1e-9)
    # sklearn's convention where every cluster is one repeated point: Davies-Bouldin 0.
    repeated = np.repeat(np.array([[0.0, 0.0], [3.0, 4.0]]), 5, axis=0)
    two = np.repeat([0, 1], 5)
    assert partition_metrics(repeated, two)["davies_bouldin"] == 0.0
    assert davies_bouldin_score(repeated, two) == 0.0
    with pytest.raises(ClusteringError, match="1 cluster"):
        partition_metrics(points, np.zeros(len(points), dtype=int))
