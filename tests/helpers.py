"""Small synthetic data for the package tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_SETTINGS: dict[str, Any] = {
    "clustering_features": ["recency_days", "frequency", "monetary"],
    "log_transformed_features": ["frequency", "monetary"],
    "winsorize_quantiles": [0.0, 1.0],
    "scaler": "standard",
    "k_min": 2,
    "k_max": 6,
    "n_clusters": "auto",
    "random_state": 7,
    "kmeans_n_init": 10,
    "silhouette_sample_size": 500,
    "stability_runs": 5,
    "stability_sample_size": 300,
    "stability_threshold": 0.75,
    "exact_ward_max_customers": 10_000,
    "ward_micro_clusters": 50,
    "cluster_order_feature": "monetary",
}


def blobs(
    n_per_cluster: int = 100, n_clusters: int = 4, n_features: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian blobs (centres 10 apart, unit spread) and their true labels."""
    rng = np.random.default_rng(seed)
    centers = rng.permutation(np.arange(n_clusters))[:, None] * 10.0 + rng.normal(
        0, 1, size=(n_clusters, n_features)
    )
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    points = centers[labels] + rng.normal(0, 1, size=(len(labels), n_features))
    return points, labels


def cluster_jaccard(reference: np.ndarray, refit: np.ndarray) -> dict[int, float]:
    """For each cluster of ``reference``, its Jaccard similarity with its best match in ``refit``.

    The direct computation segment_stability's SQL is checked against.

    Jaccard of two sets of rows: |A and B| / |A or B|; the best match is the refit cluster with
    the highest value (Hennig 2007).
    """
    similarity = {}
    for cluster in np.unique(reference):
        members = reference == cluster
        best = 0.0
        for other in np.unique(refit[members]):  # a cluster sharing no row scores 0
            matched = refit == other
            best = max(best, np.sum(members & matched) / np.sum(members | matched))
        similarity[int(cluster)] = float(best)
    return similarity


def mean_cluster_jaccard(reference: np.ndarray, refits: Sequence[np.ndarray]) -> dict[int, float]:
    """Each reference cluster's mean Jaccard similarity with its best match over the refits."""
    per_refit = [cluster_jaccard(reference, refit) for refit in refits]
    return {c: float(np.mean([values[c] for values in per_refit])) for c in per_refit[0]}


# As segment_drift.sql computes it: a bin empty on one side would make the index infinite, so
# shares are floored at this.
PSI_FLOOR = 1e-4


def population_stability_index(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI = sum((actual - expected) * ln(actual / expected)) over bins, shares floored."""
    e = np.maximum(np.asarray(expected, dtype=float), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))
