"""k-means: the fit, cluster numbering, cluster means and nearest-centroid assignment.

All functions take the scaled feature matrix (one row per customer, rows ordered by customer
id) and are deterministic for a given ``random_state``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from customer_segmentation.errors import SegmentationError
from customer_segmentation.ml.parallel import map_single_threaded

# Bytes of the (rows x centres x features) difference array nearest_centroid builds per chunk.
CHUNK_BYTES = 64 * 2**20


class ClusteringError(SegmentationError, ValueError):
    """The data cannot be clustered as asked (too few customers, too few distinct points)."""


def check_can_cluster(n_customers: int, k: int) -> None:
    """Raise a clear error when there are too few customers for k clusters."""
    if n_customers < k:
        raise ClusteringError(
            f"{n_customers} customer(s) cannot form {k} clusters; "
            "lower n_clusters / k_max or add data"
        )


@dataclass(frozen=True)
class KMeansFit:
    """A fitted k-means: centres (k x features), 0-based labels and inertia."""

    centers: np.ndarray
    labels: np.ndarray
    inertia: float


def fit_kmeans(matrix: np.ndarray, k: int, random_state: int, n_init: int) -> KMeansFit:
    """k-means++ with ``n_init`` restarts.

    Raises:
        ClusteringError: fewer customers, or fewer distinct points, than k.

    """
    check_can_cluster(len(matrix), k)
    model = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=random_state)
    labels = model.fit_predict(matrix)
    found = len(np.unique(labels))
    if found < k:
        raise ClusteringError(
            f"k-means found only {found} distinct cluster(s) for k={k}: the customers "
            f"have fewer than {k} distinct feature vectors"
        )
    return KMeansFit(model.cluster_centers_, labels, float(model.inertia_))


def fit_kmeans_sweep(
    matrix: np.ndarray, ks: Sequence[int], random_state: int, n_init: int
) -> dict[int, KMeansFit]:
    """``fit_kmeans`` at every k, several k at once (see ``map_single_threaded``).

    The largest k start first, so the slowest fits do not finish last on their own.
    """
    order = sorted(ks, reverse=True)
    fits = map_single_threaded(lambda k: fit_kmeans(matrix, k, random_state, n_init), order)
    by_k = dict(zip(order, fits, strict=True))
    return {k: by_k[k] for k in ks}


def cluster_order(centers: np.ndarray, order_index: int) -> np.ndarray:
    """New 1-based id for each old label: descending centroid of the order feature.

    Ties are broken by the other features' centroids, descending, left to right, so the
    numbering never depends on sklearn's arbitrary label order.
    """
    keys = [-centers[:, order_index]] + [
        -centers[:, j] for j in range(centers.shape[1]) if j != order_index
    ]
    ranked = np.lexsort(keys[::-1])  # lexsort sorts by the last key first
    new_ids = np.empty(len(centers), dtype=np.int64)
    new_ids[ranked] = np.arange(1, len(centers) + 1)
    return new_ids


def cluster_means(matrix: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean of each cluster (labels 0..k-1)."""
    counts = np.bincount(labels, minlength=k).astype(float)
    sums = np.column_stack(
        [np.bincount(labels, weights=matrix[:, j], minlength=k) for j in range(matrix.shape[1])]
    )
    return sums / counts[:, None]


def nearest_centroid(matrix: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre for each row (ties: the lowest index) and the distance."""
    labels = np.empty(len(matrix), dtype=np.int64)
    distances = np.empty(len(matrix))
    # Differences, not the |x|^2 - 2xc + |c|^2 expansion, so distances match SQL's to the bit.
    chunk_rows = max(1, CHUNK_BYTES // (8 * centers.shape[0] * max(1, centers.shape[1])))
    for start in range(0, len(matrix), chunk_rows):
        chunk = matrix[start : start + chunk_rows]
        squared = ((chunk[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        best = squared.argmin(axis=1)
        labels[start : start + len(chunk)] = best
        distances[start : start + len(chunk)] = np.sqrt(squared[np.arange(len(chunk)), best])
    return labels, distances
