from __future__ import annotations

import numpy as np
import pytest

from customer_segmentation.config import parse_config
from customer_segmentation.ml.kmeans import ClusteringError
from customer_segmentation.ml.selection import choose_k, knee, model_selection
from helpers import DEFAULT_SETTINGS, blobs


def test_obvious_k_is_chosen_by_the_knee() -> None:
    points, _ = blobs(n_clusters=4)
    rows, choice = model_selection(points, parse_config(DEFAULT_SETTINGS))
    assert choice.k == 4
    assert choice.rule == "knee_if_stable"
    assert len(rows) == 2 * 5  # two algorithms, k = 2..6
    selected = [r for r in rows if r["is_selected"]]
    assert {(r["algorithm"], r["k"]) for r in selected} == {("kmeans", 4), ("hierarchical", 4)}
    kmeans_4 = next(r for r in selected if r["algorithm"] == "kmeans")
    assert kmeans_4["stability"] > 0.95
    assert kmeans_4["silhouette"] > 0.6


def test_fixed_k_is_used_as_given() -> None:
    points, _ = blobs(n_clusters=4)
    _, choice = model_selection(points, parse_config({**DEFAULT_SETTINGS, "n_clusters": 3}))
    assert (choice.k, choice.rule) == (3, "fixed")


def test_range_is_capped_below_the_number_of_customers() -> None:
    points, _ = blobs(n_per_cluster=1, n_clusters=5)
    rows, _ = model_selection(points, parse_config(DEFAULT_SETTINGS))
    assert sorted({r["k"] for r in rows}) == [2, 3, 4]


def test_too_few_customers_for_k_min_is_a_clear_error() -> None:
    with pytest.raises(ClusteringError, match="2 customer\\(s\\) are too few to evaluate k=2"):
        model_selection(np.array([[0.0, 1.0], [1.0, 0.0]]), parse_config(DEFAULT_SETTINGS))


def test_knee_of_an_elbow_curve() -> None:
    assert knee([1, 2, 3, 4, 5, 6], [100, 40, 12, 10, 9, 8]) == 3


def test_unstable_knee_falls_back_to_mean_rank_among_stable_k() -> None:
    choice = choose_k(
        ks=[2, 3, 4],
        silhouette=[0.5, 0.6, 0.4],
        calinski_harabasz=[100.0, 120.0, 90.0],
        davies_bouldin=[1.0, 0.8, 1.2],
        stability=[0.9, 0.8, 0.5],
        knee_k=4,
        threshold=0.75,
    )
    assert (choice.k, choice.rule) == (3, "best_mean_rank_among_stable")
    assert "the knee k=4 has stability 0.50 < 0.75" in choice.reason


def test_no_stable_k_takes_the_most_stable() -> None:
    choice = choose_k([2, 3], [0.1, 0.2], [1.0, 2.0], [2.0, 1.0], [0.3, 0.4], None, 0.75)
    assert (choice.k, choice.rule) == (3, "most_stable")


def test_selection_silhouettes_equal_sklearn_on_the_evaluation_sample() -> None:
    """The mean silhouette per candidate is sklearn's silhouette_score on the sample's labels."""
    from sklearn.metrics import silhouette_score

    from customer_segmentation.ml.kmeans import nearest_centroid
    from customer_segmentation.ml.selection import (
        candidate_labelings,
        candidate_silhouettes,
        evaluation_sample,
        fit_candidates,
    )
    from customer_segmentation.ml.ward import fit_ward

    points, _ = blobs(n_per_cluster=80)
    config = parse_config({**DEFAULT_SETTINGS, "silhouette_sample_size": 150, "k_max": 5})
    candidates = fit_candidates(points, [2, 3, 4, 5], config)
    tree = fit_ward(points, 10_000, 100, 0)
    labelings = candidate_labelings(points, candidates, tree, config)
    evaluation = evaluation_sample(len(points), config)
    assert len(evaluation) == 150
    values = candidate_silhouettes(points, labelings, evaluation)
    assert set(values) == {(a, k) for a in ("kmeans", "hierarchical") for k in (2, 3, 4, 5)}
    for key, labels in labelings.items():
        expected = silhouette_score(points[evaluation], labels[evaluation])
        assert values[key].mean() == pytest.approx(expected, abs=1e-12), key
    # Labels of the evaluation rows alone are those rows' labels among all.
    subset = candidate_labelings(points, candidates, tree, config, rows=evaluation)
    for key, labels in labelings.items():
        assert np.array_equal(subset[key], labels[evaluation]), key
    # k-means labels are the nearest centre, as customer_clusters assigns them.
    k4 = nearest_centroid(points, candidates[4].centers)[0] + 1
    assert np.array_equal(labelings["kmeans", 4], k4)
