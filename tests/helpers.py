"""Small synthetic data for the package tests."""

from __future__ import annotations

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
