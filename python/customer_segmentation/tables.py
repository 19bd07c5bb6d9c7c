"""Layouts of the ml tables, shared by the DuckDB path (``pipeline``) and ``spark_backend``.

The SQL downstream (``assign_segment``, the segment marts) reads these tables on both engines,
so both paths build them with the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from customer_segmentation.clustering import WardTree


def centroid_table(
    centers: np.ndarray, original: np.ndarray, sizes: np.ndarray, features: Sequence[str]
) -> pa.Table:
    """``cluster_centroids``: one row per cluster and feature; row i of ``centers`` is cluster i+1.

    ``original`` holds the centres mapped back to the features' units, ``sizes`` the customers
    per cluster.
    """
    rows = [
        {
            "cluster_id": cluster + 1,
            "feature": feature,
            "feature_order": j + 1,
            "center_scaled": float(centers[cluster, j]),
            "center_original": float(original[cluster, j]),
            "n_customers": int(sizes[cluster]),
        }
        for cluster in range(len(centers))
        for j, feature in enumerate(features)
    ]
    return pa.Table.from_pylist(rows)


def centroid_matrix(centroids: pa.Table, features: Sequence[str]) -> np.ndarray:
    """The scaled centres from ``cluster_centroids``: row i is cluster i+1, columns in order."""
    k = max(centroids["cluster_id"].to_pylist())
    centers = np.empty((k, len(features)))
    position = {f: j for j, f in enumerate(features)}
    for row in centroids.to_pylist():
        centers[row["cluster_id"] - 1, position[row["feature"]]] = row["center_scaled"]
    return centers


def linkage_table(tree: WardTree) -> pa.Table:
    """``hierarchy_linkage``: the Ward merges (scipy's linkage), enough to draw a dendrogram."""
    z = tree.linkage
    n_leaves = len(tree.leaf_sizes)
    return pa.table(
        {
            "merge_order": np.arange(1, len(z) + 1, dtype=np.int64),
            "node_id": np.arange(n_leaves, n_leaves + len(z), dtype=np.int64),
            "left_child": z[:, 0].astype(np.int64),
            "right_child": z[:, 1].astype(np.int64),
            "distance": z[:, 2],
            "n_customers": tree.node_customers(),
            "n_leaves": np.full(len(z), n_leaves, dtype=np.int64),
            "method": [tree.method] * len(z),
        }
    )
