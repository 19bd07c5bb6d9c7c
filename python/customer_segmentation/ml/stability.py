"""Stability of a clustering, from refits on bootstrap samples compared on one fixed sample.

The refits' labels (``kmeans_refits``, ``ward_refits``) serve both measures. Of a whole
clustering: the mean pairwise adjusted Rand index of the refits (``selection``). Of each cluster:
Hennig's (2007) clusterboot measure, the mean over refits of the Jaccard similarity between the
cluster and its most similar cluster in the refit, computed in SQL from the stored refits
(models/marts/segments/segment_stability.sql; the refits are compared on the evaluation sample
rather than on each bootstrap sample's own rows, so every refit is read on the same customers).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from customer_segmentation.ml.kmeans import cluster_means, nearest_centroid
from customer_segmentation.ml.parallel import map_single_threaded
from customer_segmentation.ml.ward import fit_ward

Refits = dict[int, list[np.ndarray]]  # per k, each refit's 0-based labels of the evaluation rows


def _kmeans_refits(
    matrix: np.ndarray,
    k: int,
    bootstraps: Sequence[np.ndarray],
    evaluation: np.ndarray,
    random_state: int,
    n_init: int,
) -> list[np.ndarray]:
    """The refits' labels at one k; the caller silences ConvergenceWarning."""
    labelings = []
    for run, rows in enumerate(bootstraps):
        model = KMeans(n_clusters=k, n_init=n_init, random_state=random_state + run + 1)
        model.fit(matrix[rows])
        labelings.append(model.predict(matrix[evaluation]))
    return labelings


def kmeans_refits(
    matrix: np.ndarray,
    ks: Sequence[int],
    bootstraps: Sequence[np.ndarray],
    evaluation: np.ndarray,
    random_state: int,
    n_init: int,
) -> Refits:
    """For each k, k-means refitted on every bootstrap sample, labelling the evaluation rows.

    The k are refitted several at once (see ``map_single_threaded``).
    """
    # Here rather than in each thread: catch_warnings swaps a process-wide filter list, and
    # threads entering and leaving it out of order could leave the filter set for good.
    with warnings.catch_warnings():
        # Bootstrap samples repeat rows by design; a small one may hold fewer than k points.
        warnings.simplefilter("ignore", ConvergenceWarning)
        values = map_single_threaded(
            lambda k: _kmeans_refits(matrix, k, bootstraps, evaluation, random_state, n_init),
            list(ks),
        )
    return dict(zip(ks, values, strict=True))


def ward_refits(
    matrix: np.ndarray,
    ks: Sequence[int],
    bootstraps: Sequence[np.ndarray],
    evaluation: np.ndarray,
    exact_max_rows: int,
    n_micro_clusters: int,
    random_state: int,
) -> Refits:
    """For each k, Ward refitted on every bootstrap sample, labelling the evaluation rows.

    Each refit's clusters are extended to the evaluation rows by nearest cluster mean.
    """
    per_k: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    for rows in bootstraps:
        sample = matrix[rows]
        tree = fit_ward(sample, exact_max_rows, n_micro_clusters, random_state)
        for k, labels in tree.labels_for(ks).items():
            means = cluster_means(sample, labels, k)
            per_k[k].append(nearest_centroid(matrix[evaluation], means)[0])
    return per_k
