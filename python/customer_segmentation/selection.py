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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sklearn
from kneed import KneeLocator
from scipy.stats import rankdata

from customer_segmentation.clustering import (
    ClusteringError,
    bootstrap_samples,
    fit_kmeans_sweep,
    fit_ward,
    kmeans_stability,
    partition_metrics,
    sample_rows,
    silhouettes,
    ward_stability,
)
from customer_segmentation.config import ClusteringConfig
from customer_segmentation.timing import stage


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
) -> Choice:
    """Apply the documented rule (see the module docstring) to the k-means metrics."""
    if fixed_k is not None:
        return Choice(fixed_k, "fixed", f"k={fixed_k} set by var n_clusters")
    by_k = dict(zip(ks, stability, strict=True))
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


def model_selection(
    matrix: np.ndarray, config: ClusteringConfig, model_name: str = "cluster_model_selection"
) -> tuple[list[dict[str, object]], Choice]:
    """Metrics for every (algorithm, k) and the chosen k.

    Returns:
        One dict per row of ``cluster_model_selection`` and the choice.

    """
    ks = evaluated_range(config, len(matrix))
    evaluation = sample_rows(len(matrix), config.silhouette_sample_size, config.random_state)
    bootstraps = bootstrap_samples(
        len(matrix), config.stability_sample_size, config.stability_runs, config.random_state
    )
    metrics: dict[tuple[str, int], dict[str, float]] = {}
    # The Ward tree first: hierarchy_linkage, which dbt runs beside this model, fits the same
    # tree (memoised), so one of the two fits it while the other waits, instead of the fit
    # competing with the k-means sweep for the cores.
    with stage(model_name, "Ward tree and cuts"):
        tree = fit_ward(
            matrix,
            config.exact_ward_max_customers,
            config.ward_micro_clusters,
            config.random_state,
        )
        cuts = tree.labels_for(ks)
        silhouettes(matrix[evaluation], [labels[evaluation] for labels in cuts.values()])
        for k, labels in cuts.items():
            metrics["hierarchical", k] = partition_metrics(matrix, labels, evaluation)
    with stage(model_name, f"k-means for k={ks[0]}..{ks[-1]}"):
        fits = fit_kmeans_sweep(matrix, ks, config.random_state, config.kmeans_n_init)
        # All silhouettes at once, sharing the pairwise distances; partition_metrics then
        # finds them in the memo.
        silhouettes(matrix[evaluation], [fit.labels[evaluation] for fit in fits.values()])
        for k, fit in fits.items():
            metrics["kmeans", k] = partition_metrics(matrix, fit.labels, evaluation)
            metrics["kmeans", k]["inertia"] = fit.inertia
    with stage(model_name, f"k-means stability ({config.stability_runs} bootstrap refits per k)"):
        stabilities = kmeans_stability(
            matrix, ks, bootstraps, evaluation, config.random_state, config.kmeans_n_init
        )
        for k in ks:
            metrics["kmeans", k]["stability"] = stabilities[k]
    with stage(model_name, f"Ward stability ({config.stability_runs} bootstrap refits)"):
        stabilities = ward_stability(
            matrix,
            ks,
            bootstraps,
            evaluation,
            config.exact_ward_max_customers,
            config.ward_micro_clusters,
            config.random_state,
        )
        for k in ks:
            metrics["hierarchical", k]["stability"] = stabilities[k]

    knees = {
        algorithm: knee(ks, [metrics[algorithm, k]["inertia"] for k in ks])
        for algorithm in ("kmeans", "hierarchical")
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
    )
    rows: list[dict[str, object]] = []
    for algorithm in ("kmeans", "hierarchical"):
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
