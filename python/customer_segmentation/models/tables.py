"""Layouts of the ml tables, written and read back by the DuckDB models and the Spark backend.

What one model computes and another needs goes through these tables (the DAG dbt shows), so
each is written by one function here and read back by its inverse. The SQL downstream
(``assign_segment``, the segment marts) reads them on both engines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer_segmentation.ml.rules import Rule, RuleSet, rule_from_json
from customer_segmentation.ml.scaling import FeatureScaling
from customer_segmentation.ml.selection import Candidate
from customer_segmentation.ml.ward import WardTree


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


LINKAGE_SCHEMA = pa.schema(
    [
        ("merge_order", pa.int64()),
        ("node_id", pa.int64()),
        ("left_child", pa.int64()),
        ("right_child", pa.int64()),
        ("distance", pa.float64()),
        ("n_customers", pa.int64()),
        ("n_leaves", pa.int64()),
        ("method", pa.string()),
    ]
)


SELECTION_SCHEMA = pa.schema(
    [
        ("algorithm", pa.string()),
        ("k", pa.int64()),
        ("inertia", pa.float64()),
        ("silhouette", pa.float64()),
        ("calinski_harabasz", pa.float64()),
        ("davies_bouldin", pa.float64()),
        ("stability", pa.float64()),
        ("is_knee", pa.bool_()),
        ("is_selected", pa.bool_()),
        ("selection_rule", pa.string()),
        ("selection_reason", pa.string()),
        ("n_customers", pa.int64()),
        ("silhouette_sample_size", pa.int64()),
        ("hierarchical_method", pa.string()),
        ("sklearn_version", pa.string()),
    ]
)


def empty_linkage_table() -> pa.Table:
    """``hierarchy_linkage`` without a tree (a build that scores with a registered model)."""
    return LINKAGE_SCHEMA.empty_table()


def linkage_matrix(linkage: pa.Table) -> np.ndarray:
    """Scipy's linkage matrix back from ``hierarchy_linkage`` (ordered by merge_order)."""
    n_leaves = int(linkage["n_leaves"][0].as_py()) if linkage.num_rows else 1
    children = np.column_stack(
        [linkage["left_child"].to_numpy(), linkage["right_child"].to_numpy()]
    ).astype(np.int64)
    leaves = np.concatenate([np.ones(n_leaves), np.zeros(len(children))])
    for step, (left, right) in enumerate(children):
        leaves[n_leaves + step] = leaves[left] + leaves[right]
    return np.column_stack(
        [children.astype(float), linkage["distance"].to_numpy(), leaves[n_leaves:]]
    )


def leaves_table(ids: np.ndarray, leaf_of_row: np.ndarray, method: str) -> pa.Table:
    """``hierarchy_leaves``: the Ward leaf of every customer."""
    return pa.table(
        {
            "customer_id": ids,
            "leaf_id": leaf_of_row.astype(np.int64),
            "method": pa.array([method] * len(ids), pa.string()),
        }
    )


def ward_tree_from_tables(leaves: pa.Table, linkage: pa.Table) -> WardTree:
    """The Ward tree from ``hierarchy_leaves`` (by customer id) and ``hierarchy_linkage``."""
    leaf_of_row = leaves["leaf_id"].to_numpy()
    method = str(leaves["method"][0].as_py()) if leaves.num_rows else "exact"
    return WardTree(linkage_matrix(linkage), leaf_of_row, np.bincount(leaf_of_row), method)


def candidates_table(candidates: Mapping[int, Candidate], features: Sequence[str]) -> pa.Table:
    """``kmeans_candidates``: the k-means fit at every evaluated k, a row per cluster, feature."""
    rows = [
        {
            "k": k,
            "cluster_id": cluster + 1,
            "feature": feature,
            "feature_order": j + 1,
            "center_scaled": float(candidate.centers[cluster, j]),
            "inertia": candidate.inertia,
        }
        for k, candidate in sorted(candidates.items())
        for cluster in range(k)
        for j, feature in enumerate(features)
    ]
    return pa.Table.from_pylist(rows)


def candidates_from_table(table: pa.Table, features: Sequence[str]) -> dict[int, Candidate]:
    """The candidates back from ``kmeans_candidates``."""
    candidates = {}
    for k in sorted(set(table["k"].to_pylist())):
        rows = table.filter(pc.equal(table["k"], k))
        candidates[k] = Candidate(
            k, centroid_matrix(rows, features), float(rows["inertia"][0].as_py())
        )
    return candidates


def silhouettes_table(
    ids: np.ndarray,
    evaluation: np.ndarray,
    labelings: Mapping[tuple[str, int], np.ndarray],
    values: Mapping[tuple[str, int], np.ndarray],
) -> pa.Table:
    """``candidate_silhouettes``: each evaluation customer's silhouette under every candidate."""
    keys = list(values)
    n = len(evaluation)
    return pa.table(
        {
            "algorithm": [algorithm for algorithm, _ in keys for _ in range(n)],
            "k": np.repeat([k for _, k in keys], n).astype(np.int64),
            "customer_id": np.tile(ids[evaluation], len(keys)),
            "cluster_id": np.concatenate(
                [labelings[key][evaluation] for key in keys] or [np.empty(0, np.int64)]
            ).astype(np.int64),
            "silhouette": np.concatenate([values[key] for key in keys] or [np.empty(0)]),
        }
    )


def mean_by_candidate(silhouettes: pa.Table) -> dict[tuple[str, int], float]:
    """Mean silhouette per (algorithm, k) from ``candidate_silhouettes``.

    The rows come ordered by algorithm, k and customer id, and each mean is numpy's over the
    customers in id order: the same sum, in the same order, as on the array they came from.
    """
    algorithms = silhouettes["algorithm"].to_pylist()
    ks = silhouettes["k"].to_numpy()
    values = silhouettes["silhouette"].to_numpy()
    means = {}
    starts = [
        i
        for i in range(len(ks))
        if i == 0 or (algorithms[i], ks[i]) != (algorithms[i - 1], ks[i - 1])
    ]
    for start, end in zip(starts, [*starts[1:], len(ks)], strict=True):
        means[algorithms[start], int(ks[start])] = float(values[start:end].mean())
    return means


def parameters_table(parameters: Sequence[FeatureScaling]) -> pa.Table:
    """The parameters as a table, one row per feature."""
    return pa.Table.from_pylist([asdict(p) for p in parameters])


def parameters_from_table(table: pa.Table) -> list[FeatureScaling]:
    """Read parameters back from the ``scaler_parameters`` table, in feature order."""
    rows = sorted(table.to_pylist(), key=lambda row: row["feature_order"])
    return [FeatureScaling(**row) for row in rows]


def refits_table(
    ids: np.ndarray, refits: Mapping[tuple[str, int], Sequence[np.ndarray]], size: int
) -> pa.Table:
    """``stability_refits``: each refit's cluster of each evaluation customer (ids, in order).

    One row per (algorithm, k, run, customer); ``refit_cluster_id`` is 1-based, numbered as the
    refit came out (the numbers of two refits do not correspond).
    """
    keys = sorted(refits)
    parts = [
        (algorithm, k, run, labels)
        for algorithm, k in keys
        for run, labels in enumerate(refits[algorithm, k], start=1)
    ]
    n = len(ids)
    if not parts:
        return pa.table(
            {
                "algorithm": pa.array([], pa.string()),
                "k": pa.array([], pa.int64()),
                "run": pa.array([], pa.int64()),
                "customer_id": pa.array(ids[:0]),
                "refit_cluster_id": pa.array([], pa.int64()),
                "bootstrap_size": pa.array([], pa.int64()),
            }
        )
    return pa.table(
        {
            "algorithm": pa.array(np.repeat([a for a, _, _, _ in parts], n)),
            "k": np.repeat(np.array([k for _, k, _, _ in parts], dtype=np.int64), n),
            "run": np.repeat(np.array([r for _, _, r, _ in parts], dtype=np.int64), n),
            "customer_id": pa.array(np.tile(ids, len(parts))),
            "refit_cluster_id": np.concatenate([labels for *_, labels in parts]).astype(np.int64)
            + 1,
            "bootstrap_size": np.full(n * len(parts), size, dtype=np.int64),
        }
    )


def refits_from_table(table: pa.Table) -> dict[tuple[str, int], list[np.ndarray]]:
    """The refits back from ``stability_refits``: per (algorithm, k), each run's 0-based labels.

    Each run's labels are ordered by customer id, so every refit reads the same customers.
    """
    runs = table.group_by(["algorithm", "k", "run"]).aggregate([])
    runs = runs.sort_by([("algorithm", "ascending"), ("k", "ascending"), ("run", "ascending")])
    refits: dict[tuple[str, int], list[np.ndarray]] = {}
    for key in runs.to_pylist():
        mask = pc.and_(
            pc.and_(pc.equal(table["algorithm"], key["algorithm"]), pc.equal(table["k"], key["k"])),
            pc.equal(table["run"], key["run"]),
        )
        labels = table.filter(mask).sort_by("customer_id")["refit_cluster_id"].to_numpy() - 1
        refits.setdefault((key["algorithm"], int(key["k"])), []).append(labels)
    return refits


def rules_table(rule_set: RuleSet, clusters: np.ndarray, assigned: np.ndarray) -> pa.Table:
    """``segment_rule_tree``: one row per rule (leaf), with how it did on the fit customers.

    ``assigned`` holds each fit customer's rule (0-based, as ``RuleSet.assign``) and
    ``clusters`` their cluster ids.
    """
    rules = rule_set.rules
    covered = np.bincount(assigned[assigned >= 0], minlength=len(rules))
    rule_clusters = np.array([rule.cluster_id for rule in rules])
    hit = (assigned >= 0) & (rule_clusters[np.maximum(assigned, 0)] == clusters)
    matched = np.bincount(assigned[hit], minlength=len(rules))
    n_rules = len(rules)
    return pa.table(
        {
            "rule_id": np.array([rule.rule_id for rule in rules], dtype=np.int64),
            "cluster_id": rule_clusters.astype(np.int64),
            "sql_predicate": [rule.sql() for rule in rules],
            "rule_text": [rule.words() for rule in rules],
            "conditions": [rule.conditions_json() for rule in rules],
            "n_conditions": np.array([len(rule.conditions) for rule in rules], dtype=np.int64),
            "n_fit_customers": covered.astype(np.int64),
            "n_fit_matching": matched.astype(np.int64),
            "fit_customers": np.full(n_rules, rule_set.n_fit_customers, dtype=np.int64),
            "fidelity_unrounded": np.full(n_rules, rule_set.fidelity_unrounded),
            "class_weight": [rule_set.class_weight] * n_rules,
            "max_depth": np.full(n_rules, rule_set.max_depth, dtype=np.int64),
            "min_leaf_customers": np.full(n_rules, rule_set.min_leaf_customers, dtype=np.int64),
        }
    )


def rules_from_table(table: pa.Table) -> list[Rule]:
    """The rules back from ``segment_rule_tree``, in rule id order."""
    rows = sorted(table.select(["rule_id", "cluster_id", "conditions"]).to_pylist(),
                  key=lambda row: row["rule_id"])  # fmt: skip
    return [
        rule_from_json(int(row["rule_id"]), int(row["cluster_id"]), row["conditions"])
        for row in rows
    ]


def stability_table(stability: Mapping[tuple[str, int], float], runs: int, size: int) -> pa.Table:
    """``cluster_stability``: the bootstrap stability of each (algorithm, k)."""
    keys = sorted(stability)
    return pa.table(
        {
            "algorithm": pa.array([algorithm for algorithm, _ in keys], pa.string()),
            "k": np.array([k for _, k in keys], dtype=np.int64),
            "stability": np.array([stability[key] for key in keys], dtype=np.float64),
            "stability_runs": np.full(len(keys), runs, dtype=np.int64),
            "stability_sample_size": np.full(len(keys), size, dtype=np.int64),
        }
    )


def stability_from_table(table: pa.Table) -> dict[tuple[str, int], float]:
    """The stability back from ``cluster_stability``."""
    return {(row["algorithm"], int(row["k"])): float(row["stability"]) for row in table.to_pylist()}
