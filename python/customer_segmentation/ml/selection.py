"""Evaluate k = k_min..k_max for k-means and Ward, and choose k by a recorded rule.

The rule (``choose_k``), in order:

1. ``fixed``: var ``n_clusters`` is a number: use it.
2. ``knee_if_stable``: the knee of the k-means inertia curve (found by ``kneed``) when its
   stability (mean adjusted Rand index between bootstrap refits) is at least
   ``stability_threshold``.
3. ``best_mean_rank_among_stable``: otherwise, among the k whose stability reaches the
   threshold, the best mean rank of silhouette (high), Calinski-Harabasz (high) and
   Davies-Bouldin (low); ties go to the smaller k.
4. ``most_stable``: if no k is stable, the most stable k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sklearn
from kneed import KneeLocator
from scipy.stats import rankdata

from customer_segmentation.config import ClusteringConfig
from customer_segmentation.ml.kmeans import (
    ClusteringError,
    cluster_order,
    fit_kmeans_sweep,
    nearest_centroid,
)
from customer_segmentation.ml.metrics import (
    can_score_silhouette,
    mean_pairwise_ari,
    partition_metrics,
    silhouettes,
)
from customer_segmentation.ml.sampling import bootstrap_samples, sample_rows
from customer_segmentation.ml.stability import kmeans_refits, ward_refits
from customer_segmentation.ml.ward import WardTree, fit_ward, numbered_cuts
from customer_segmentation.timing import stage

ALGORITHMS = ("kmeans", "hierarchical")
Labelings = Mapping[tuple[str, int], np.ndarray]


@dataclass(frozen=True)
class Choice:
    """The chosen k, the rule that chose it and why, in words."""

    k: int
    rule: str
    reason: str


def knee(ks: Sequence[int], inertias: Sequence[float]) -> int | None:
    """The knee (elbow) of a decreasing, convex inertia curve, or None when there is none."""
    if len(ks) < 3:
        return None
    located = KneeLocator(list(ks), list(inertias), curve="convex", direction="decreasing")
    return None if located.knee is None else int(located.knee)


def choose_k(
    ks: Sequence[int],
    silhouette: Sequence[float],
    calinski_harabasz: Sequence[float],
    davies_bouldin: Sequence[float],
    stability: Sequence[float],
    knee_k: int | None,
    threshold: float,
    fixed_k: int | None = None,
    registered_k: int | None = None,
) -> Choice:
    """Apply the documented rule (see the module docstring) to the k-means metrics.

    ``registered_k``: the k of the previous registered model; kept while it is stable, so a
    weekly refit does not merge or split segments because the knee moved.
    """
    if fixed_k is not None:
        return Choice(fixed_k, "fixed", f"k={fixed_k} set by var n_clusters")
    by_k = dict(zip(ks, stability, strict=True))
    if registered_k in by_k and by_k[registered_k] >= threshold:
        return Choice(
            registered_k,
            "registered_k_if_stable",
            f"k={registered_k}: the k of the previous registered model, still stable "
            f"({by_k[registered_k]:.2f} >= {threshold}; var keep_registered_k)",
        )
    stable = [k for k in ks if by_k[k] >= threshold]
    if knee_k is not None and knee_k in stable:
        return Choice(
            knee_k,
            "knee_if_stable",
            f"k={knee_k}: knee of the k-means inertia curve (kneed), stability "
            f"{by_k[knee_k]:.2f} >= {threshold}",
        )
    if stable:
        index = [ks.index(k) for k in stable]
        sil = np.nan_to_num([silhouette[i] for i in index], nan=-1.0)
        ranks = (
            rankdata(-sil)
            + rankdata([-calinski_harabasz[i] for i in index])
            + rankdata([davies_bouldin[i] for i in index])
        ) / 3
        best = stable[int(np.argmin(ranks))]  # argmin takes the first (smallest k) on ties
        knee_note = (
            "no knee was found"
            if knee_k is None
            else f"the knee k={knee_k} has stability {by_k[knee_k]:.2f} < {threshold}"
        )
        return Choice(
            best,
            "best_mean_rank_among_stable",
            f"k={best}: {knee_note}; best mean rank of silhouette, Calinski-Harabasz and "
            f"Davies-Bouldin among the stable k {stable}",
        )
    best = max(ks, key=lambda k: (by_k[k], -k))
    return Choice(
        best,
        "most_stable",
        f"k={best}: no k reached stability {threshold}; the most stable k ({by_k[best]:.2f})",
    )


def evaluated_range(config: ClusteringConfig, n_customers: int) -> list[int]:
    """The k to evaluate: k_min..k_max, capped at n - 1 (silhouette needs k < n).

    Raises:
        ClusteringError: too few customers for k_min (or for a fixed n_clusters).

    """
    needed = max(config.k_min, config.n_clusters or 0) + 1
    if n_customers < needed:
        raise ClusteringError(
            f"{n_customers} customer(s) are too few to evaluate k={needed - 1} "
            f"(need at least {needed}); lower k_min / n_clusters or add data"
        )
    return list(range(config.k_min, min(config.k_max, n_customers - 1) + 1))


@dataclass(frozen=True)
class Candidate:
    """The k-means fit at one k: centres numbered by ``cluster_order`` (row i is cluster i + 1)."""

    k: int
    centers: np.ndarray
    inertia: float


def fit_candidates(
    matrix: np.ndarray, ks: Sequence[int], config: ClusteringConfig
) -> dict[int, Candidate]:
    """k-means at every evaluated k (several at once), centres in cluster-id order."""
    fits = fit_kmeans_sweep(matrix, ks, config.random_state, config.kmeans_n_init)
    candidates = {}
    for k, fit in fits.items():
        new_ids = cluster_order(fit.centers, config.order_feature_index)
        candidates[k] = Candidate(k, fit.centers[np.argsort(new_ids)], fit.inertia)
    return candidates


def evaluation_sample(n_customers: int, config: ClusteringConfig) -> np.ndarray:
    """The fixed, seeded rows on which silhouettes and stability are compared."""
    return sample_rows(n_customers, config.silhouette_sample_size, config.random_state)


def candidate_labelings(
    matrix: np.ndarray,
    candidates: Mapping[int, Candidate],
    tree: WardTree | None,
    config: ClusteringConfig,
    rows: np.ndarray | None = None,
) -> dict[tuple[str, int], np.ndarray]:
    """The 1-based cluster of every row (or of ``rows`` only) for each (algorithm, k).

    k-means: the nearest centre, as ``customer_clusters`` assigns; Ward: the tree's cut,
    numbered like k-means clusters (``ward.numbered_cuts``, from the means of all rows). With
    ``rows``, the k-means assignment costs only those rows.
    """
    ks = sorted(candidates)
    assigned = matrix if rows is None else matrix[rows]
    labelings = {
        ("kmeans", k): nearest_centroid(assigned, candidates[k].centers)[0] + 1 for k in ks
    }
    if tree is None:  # a build that scores with a registered model fits no Ward tree
        return labelings
    for k, ids in numbered_cuts(matrix, tree, ks, config.order_feature_index).items():
        labelings["hierarchical", k] = ids if rows is None else ids[rows]
    return labelings


def candidate_silhouettes(
    matrix: np.ndarray, labelings: Labelings, evaluation: np.ndarray
) -> dict[tuple[str, int], np.ndarray]:
    """Per-row silhouettes on the evaluation rows, for every labeling that has one.

    All labelings at once, sharing the pairwise distances of the evaluation rows. A labeling
    with fewer than 2 clusters among those rows (or one per row) has none and is left out.
    """
    scored = {key: labels[evaluation] for key, labels in labelings.items()}
    scored = {key: labels for key, labels in scored.items() if can_score_silhouette(labels)}
    values = silhouettes(matrix[evaluation], list(scored.values()))
    return dict(zip(scored, values, strict=True))


def refits_by_candidate(
    matrix: np.ndarray,
    ks: Sequence[int],
    config: ClusteringConfig,
    model_name: str = "stability_refits",
) -> dict[tuple[str, int], list[np.ndarray]]:
    """k-means and Ward refitted on bootstrap samples at every k, labelling the evaluation rows.

    Each value holds one 0-based labeling of the evaluation sample per refit. Needs neither
    the candidates nor the tree, so a build runs it beside them.
    """
    evaluation = evaluation_sample(len(matrix), config)
    bootstraps = bootstrap_samples(
        len(matrix), config.stability_sample_size, config.stability_runs, config.random_state
    )
    refits: dict[tuple[str, int], list[np.ndarray]] = {}
    with stage(model_name, f"k-means refits ({config.stability_runs} bootstrap samples per k)"):
        by_k = kmeans_refits(
            matrix, ks, bootstraps, evaluation, config.random_state, config.kmeans_n_init
        )
        refits.update({("kmeans", k): labelings for k, labelings in by_k.items()})
    with stage(model_name, f"Ward refits ({config.stability_runs} bootstrap samples)"):
        by_k = ward_refits(
            matrix,
            ks,
            bootstraps,
            evaluation,
            config.exact_ward_max_customers,
            config.ward_micro_clusters,
            config.random_state,
        )
        refits.update({("hierarchical", k): labelings for k, labelings in by_k.items()})
    return refits


def stability_from_refits(
    refits: Mapping[tuple[str, int], Sequence[np.ndarray]],
) -> dict[tuple[str, int], float]:
    """The stability of each (algorithm, k): the mean pairwise ARI of its refits."""
    return {key: mean_pairwise_ari(labelings) for key, labelings in refits.items()}


def stability_by_candidate(
    matrix: np.ndarray,
    ks: Sequence[int],
    config: ClusteringConfig,
    model_name: str = "cluster_stability",
) -> dict[tuple[str, int], float]:
    """Bootstrap stability of k-means and Ward at every k (mean pairwise ARI of the refits)."""
    return stability_from_refits(refits_by_candidate(matrix, ks, config, model_name))


def selection_rows(
    matrix: np.ndarray,
    candidates: Mapping[int, Candidate],
    tree: WardTree,
    labelings: Labelings,
    mean_silhouettes: Mapping[tuple[str, int], float],
    stability: Mapping[tuple[str, int], float],
    config: ClusteringConfig,
    model_name: str = "cluster_model_selection",
    registered_k: int | None = None,
) -> tuple[list[dict[str, object]], Choice]:
    """The rows of ``cluster_model_selection`` and the choice of k.

    From the candidates, the Ward tree, the silhouettes and the stability (each computed
    once, upstream) this adds the scores on all rows and the knee, then applies ``choose_k``.
    """
    ks = sorted(candidates)
    evaluation = evaluation_sample(len(matrix), config)
    metrics: dict[tuple[str, int], dict[str, float]] = {}
    with stage(model_name, f"scores for k={ks[0]}..{ks[-1]}"):
        for key, labels in labelings.items():
            metrics[key] = partition_metrics(matrix, labels)
            metrics[key]["silhouette"] = mean_silhouettes.get(key, math.nan)
            metrics[key]["stability"] = stability[key]
        for k in ks:
            metrics["kmeans", k]["inertia"] = candidates[k].inertia

    knees = {
        algorithm: knee(ks, [metrics[algorithm, k]["inertia"] for k in ks])
        for algorithm in ALGORITHMS
    }
    kmeans_rows = [metrics["kmeans", k] for k in ks]
    choice = choose_k(
        ks,
        [m["silhouette"] for m in kmeans_rows],
        [m["calinski_harabasz"] for m in kmeans_rows],
        [m["davies_bouldin"] for m in kmeans_rows],
        [m["stability"] for m in kmeans_rows],
        knees["kmeans"],
        config.stability_threshold,
        config.n_clusters,
        registered_k if config.keep_registered_k else None,
    )
    rows: list[dict[str, object]] = []
    for algorithm in ALGORITHMS:
        for k in ks:
            m = metrics[algorithm, k]
            rows.append(
                {
                    "algorithm": algorithm,
                    "k": k,
                    "inertia": m["inertia"],
                    "silhouette": None if math.isnan(m["silhouette"]) else m["silhouette"],
                    "calinski_harabasz": m["calinski_harabasz"],
                    "davies_bouldin": m["davies_bouldin"],
                    "stability": m["stability"],
                    "is_knee": knees[algorithm] == k,
                    "is_selected": k == choice.k,
                    "selection_rule": choice.rule,
                    "selection_reason": choice.reason,
                    "n_customers": len(matrix),
                    "silhouette_sample_size": len(evaluation),
                    "hierarchical_method": tree.method,
                    "sklearn_version": sklearn.__version__,
                }
            )
    return rows, choice


def registered_rows(
    matrix: np.ndarray,
    candidate: Candidate,
    labels: np.ndarray,
    mean_silhouette: float,
    reason: str,
    config: ClusteringConfig,
) -> dict[str, object]:
    """``cluster_model_selection`` of a build that scores with a registered model: its row.

    The registered k-means model's scores on today's customers (nothing is chosen or fitted;
    no stability, no Ward).
    """
    metrics = partition_metrics(matrix, labels)
    row = {
        "algorithm": "kmeans",
        "k": candidate.k,
        "inertia": candidate.inertia,
        "silhouette": None if math.isnan(mean_silhouette) else mean_silhouette,
        "calinski_harabasz": metrics["calinski_harabasz"],
        "davies_bouldin": metrics["davies_bouldin"],
        "stability": None,
        "is_knee": False,
        "is_selected": True,
        "selection_rule": "registered_model",
        "selection_reason": reason,
        "n_customers": len(matrix),
        "silhouette_sample_size": len(evaluation_sample(len(matrix), config)),
        "hierarchical_method": None,
        "sklearn_version": sklearn.__version__,
    }
    return row


def model_selection(
    matrix: np.ndarray, config: ClusteringConfig, model_name: str = "cluster_model_selection"
) -> tuple[list[dict[str, object]], Choice]:
    """Every step of the choice of k on one matrix, in one call.

    The dbt build runs these steps as separate models that share their results as tables
    (``kmeans_candidates``, ``hierarchy_leaves``, ``hierarchy_linkage``,
    ``candidate_silhouettes``, ``cluster_stability``); the tests call this.
    """
    ks = evaluated_range(config, len(matrix))
    with stage(model_name, "Ward tree"):
        tree = fit_ward(
            matrix, config.exact_ward_max_customers, config.ward_micro_clusters, config.random_state
        )
    with stage(model_name, f"k-means for k={ks[0]}..{ks[-1]}"):
        candidates = fit_candidates(matrix, ks, config)
    labelings = candidate_labelings(matrix, candidates, tree, config)
    with stage(model_name, "silhouettes"):
        values = candidate_silhouettes(matrix, labelings, evaluation_sample(len(matrix), config))
    means = {key: float(v.mean()) for key, v in values.items()}
    stability = stability_by_candidate(matrix, ks, config, model_name)
    return selection_rows(matrix, candidates, tree, labelings, means, stability, config, model_name)
