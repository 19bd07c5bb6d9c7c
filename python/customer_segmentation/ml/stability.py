"""Stability of a clustering: mean pairwise ARI of refits on bootstrap samples."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from customer_segmentation.ml.kmeans import cluster_means, nearest_centroid
from customer_segmentation.ml.metrics import mean_pairwise_ari
from customer_segmentation.ml.parallel import map_single_threaded
from customer_segmentation.ml.ward import fit_ward


def _kmeans_stability(
    matrix: np.ndarray,
    k: int,
    bootstraps: Sequence[np.ndarray],
    evaluation: np.ndarray,
    random_state: int,
    n_init: int,
) -> float:
    """Mean pairwise ARI at one k; the caller silences ConvergenceWarning."""
    labelings = []
    for run, rows in enumerate(bootstraps):
        model = KMeans(n_clusters=k, n_init=n_init, random_state=random_state + run + 1)
        model.fit(matrix[rows])
        labelings.append(model.predict(matrix[evaluation]))
    return mean_pairwise_ari(labelings)


def kmeans_stability(
    matrix: np.ndarray,
    ks: Sequence[int],
    bootstraps: Sequence[np.ndarray],
    evaluation: np.ndarray,
    random_state: int,
    n_init: int,
) -> dict[int, float]:
    """For each k, mean pairwise ARI of k-means refitted on bootstrap samples, on one sample.

    The k are refitted several at once (see ``map_single_threaded``).
    """
    # Here rather than in each thread: catch_warnings swaps a process-wide filter list, and
    # threads entering and leaving it out of order could leave the filter set for good.
    with warnings.catch_warnings():
        # Bootstrap samples repeat rows by design; a small one may hold fewer than k points.
        warnings.simplefilter("ignore", ConvergenceWarning)
        values = map_single_threaded(
            lambda k: _kmeans_stability(matrix, k, bootstraps, evaluation, random_state, n_init),
            list(ks),
        )
    return dict(zip(ks, values, strict=True))


def ward_stability(
    matrix: np.ndarray,
    ks: Sequence[int],
    bootstraps: Sequence[np.ndarray],
    evaluation: np.ndarray,
    exact_max_rows: int,
    n_micro_clusters: int,
    random_state: int,
) -> dict[int, float]:
    """Mean pairwise ARI of Ward refitted on bootstrap samples, for each k.

    Each refit's clusters are extended to the evaluation rows by nearest cluster mean.
    """
    per_k: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    for rows in bootstraps:
        sample = matrix[rows]
        tree = fit_ward(sample, exact_max_rows, n_micro_clusters, random_state)
        for k, labels in tree.labels_for(ks).items():
            means = cluster_means(sample, labels, k)
            per_k[k].append(nearest_centroid(matrix[evaluation], means)[0])
    return {k: mean_pairwise_ari(labelings) for k, labelings in per_k.items()}
