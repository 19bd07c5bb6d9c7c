"""What each dbt Python model in models/ml does, as functions of DuckDB relations.

A dbt Python model only calls one of these with ``dbt.ref(...)`` relations and the
``clustering`` config; the work is in ``customer_segmentation.ml``. What one model computes and
another needs is a table between them, so the DAG dbt shows is what depends on what:

    customer_features_scaled -> kmeans_candidates ------------------+
                             -> hierarchy_leaves -> hierarchy_linkage +-> candidate_silhouettes
                             -> stability_refits -> cluster_stability +-> cluster_model_selection
    cluster_model_selection + kmeans_candidates -> cluster_centroids -> customer_clusters
    candidate_silhouettes + customer_clusters -> customer_silhouettes
    customer_features + customer_clusters -> segment_rule_tree -> customer_rule_segments

    segment_registry (the registry as the last build left it) -> segment_model_plan
    segment_model_plan + the fit (scaler, centroids, clusters, names, rules) -> segment_models

    customer_purchase_histories + clv_calibration_histories -> clv_model_parameters
    clv_model_parameters + customer_purchase_histories -> clv_predictions
    clv_model_parameters + clv_calibration_histories -> clv_holdout_predictions

Inputs are read as Arrow, ordered by customer id, because DuckDB's group-by order varies and
the labels would vary with it. When ``dbt.ref(...)`` is a Spark DataFrame (dbt on Databricks),
``boundary.dbt_model`` hands each call to its twin in ``customer_segmentation.spark.models``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from customer_segmentation.config import ClusteringConfig, ClvConfig, parse_clv_config
from customer_segmentation.ml.kmeans import nearest_centroid
from customer_segmentation.ml.lifetime_value import (
    customer_values,
    fit_lifetime_value,
    holdout_predictions,
)
from customer_segmentation.ml.projection import pca_coordinates, project
from customer_segmentation.ml.rules import RuleSet, assign_rules, fit_rules
from customer_segmentation.ml.scaling import (
    fit_scaler,
    invert_scaling,
)
from customer_segmentation.ml.selection import (
    Candidate,
    candidate_labelings,
    evaluated_range,
    evaluation_sample,
    fit_candidates,
    refits_by_candidate,
    selection_rows,
    stability_from_refits,
)
from customer_segmentation.ml.selection import (
    candidate_silhouettes as silhouettes_of_candidates,
)
from customer_segmentation.ml.ward import WardTree, numbered_cuts, ward_leaves, ward_tree
from customer_segmentation.models.boundary import (
    ModelError,
    Relation,
    clear_errors,
    dbt_model,
    read_matrix,
    read_ordered,
    selected_k,
)
from customer_segmentation.models.registry import (
    PLAN_SCHEMA,
    decide,
    empty_models_table,
    models_row_table,
    register_model,
    registered_candidate,
    registered_projection,
    registered_rules,
    registered_scaler,
    registered_selection_table,
    scoring_plan,
    utc_now,
)
from customer_segmentation.models.tables import (
    candidates_from_table,
    candidates_table,
    centroid_matrix,
    centroid_table,
    empty_linkage_table,
    leaves_table,
    linkage_table,
    mean_by_candidate,
    parameters_from_table,
    parameters_table,
    refits_from_table,
    refits_table,
    rules_from_table,
    rules_table,
    silhouettes_table,
    stability_from_table,
    stability_table,
    ward_tree_from_tables,
)
from customer_segmentation.models.value_tables import (
    as_of_date,
    fitted_parameters,
    histories_from_table,
    no_holdout_reason,
    parameters_rows,
)
from customer_segmentation.models.value_tables import (
    parameters_table as clv_parameters_table,
)
from customer_segmentation.timing import stage

__all__ = [
    "ModelError",
    "candidate_silhouettes",
    "clear_errors",
    "cluster_centroids",
    "cluster_model_selection",
    "cluster_stability",
    "clv_holdout_predictions",
    "clv_model_parameters",
    "clv_predictions",
    "customer_clusters",
    "customer_rule_segments",
    "customer_silhouettes",
    "hierarchy_leaves",
    "hierarchy_linkage",
    "kmeans_candidates",
    "scaler_parameters",
    "segment_model_plan",
    "segment_models",
    "segment_rule_tree",
    "stability_refits",
]


@dbt_model
def scaler_parameters(features: Relation, plan: Relation, config: ClusteringConfig) -> pa.Table:
    """Model scaler_parameters: fit the scaling on customer_features (or the registered one)."""
    registered = scoring_plan(plan, "scaler_parameters")
    if registered is not None:
        return registered_scaler(registered)
    with stage("scaler_parameters", "fit scaling"):
        _, matrix = read_matrix(features, config.clustering_features)
        evaluated_range(config, len(matrix))  # too few customers: say so before anything else
        fitted = fit_scaler(
            matrix,
            config.clustering_features,
            config.log_transformed_features,
            config.winsorize_quantiles,
            config.scaler,
        )
    for unused in (p for p in fitted if not p.is_used):
        print(f"[scaler_parameters] WARNING: {unused.unused_reason}: left out of the clustering",
              flush=True)  # fmt: skip
        if unused.feature == config.cluster_order_feature:
            print(
                f"[scaler_parameters] WARNING: cluster_order_feature {unused.feature} has no "
                "spread: cluster ids no longer follow it (set cluster_order_feature to a used "
                "feature)",
                flush=True,
            )
    return parameters_table(fitted)


@dbt_model
def kmeans_candidates(scaled: Relation, plan: Relation, config: ClusteringConfig) -> pa.Table:
    """Model kmeans_candidates: k-means at every k the selection evaluates.

    Not refitting: the registered model's centres, the only candidate (nothing is fitted).
    """
    _, matrix = read_matrix(scaled, config.clustering_features)
    registered = scoring_plan(plan, "kmeans_candidates")
    if registered is not None:
        candidate = registered_candidate(registered, matrix, config.clustering_features)
        return candidates_table({candidate.k: candidate}, config.clustering_features)
    ks = evaluated_range(config, len(matrix))
    with stage("kmeans_candidates", f"k-means for k={ks[0]}..{ks[-1]}"):
        candidates = fit_candidates(matrix, ks, config)
    return candidates_table(candidates, config.clustering_features)


@dbt_model
def hierarchy_leaves(scaled: Relation, plan: Relation, config: ClusteringConfig) -> pa.Table:
    """Model hierarchy_leaves: the Ward leaf of every customer (itself, or its micro-cluster).

    Not refitting: empty (Ward, the comparison clustering, is not fitted either).
    """
    ids, matrix = read_matrix(scaled, config.clustering_features)
    if scoring_plan(plan, "hierarchy_leaves") is not None:
        return leaves_table(ids[:0], np.zeros(0, dtype=np.int64), "none")
    with stage("hierarchy_leaves", "Ward leaves"):
        leaf_of_row, method = ward_leaves(
            matrix, config.exact_ward_max_customers, config.ward_micro_clusters, config.random_state
        )
    return leaves_table(ids, leaf_of_row, method)


@dbt_model
def hierarchy_linkage(scaled: Relation, leaves: Relation, config: ClusteringConfig) -> pa.Table:
    """Model hierarchy_linkage: the Ward merges of the leaves, enough to draw a dendrogram."""
    ids, matrix = read_matrix(scaled, config.clustering_features)
    if not leaves.to_arrow_table().num_rows:  # not refitting: no Ward tree
        return empty_linkage_table()
    leaf_table = read_ordered(leaves, "customer_id", ids, "hierarchy_leaves")
    with stage("hierarchy_linkage", "Ward tree"):
        tree = ward_tree(
            matrix, leaf_table["leaf_id"].to_numpy(), str(leaf_table["method"][0].as_py())
        )
    return linkage_table(tree)


def _candidates_and_tree(
    ids: np.ndarray, candidates: Relation, leaves: Relation, linkage: Relation,
    config: ClusteringConfig,
) -> tuple[dict[int, Candidate], WardTree | None]:  # fmt: skip
    """The k-means candidates and the Ward tree (None when not refitting), from their tables."""
    fits = candidates_from_table(candidates.to_arrow_table(), config.clustering_features)
    if not leaves.to_arrow_table().num_rows:
        return fits, None
    tree = ward_tree_from_tables(
        read_ordered(leaves, "customer_id", ids, "hierarchy_leaves"),
        linkage.order("merge_order").to_arrow_table(),
    )
    return fits, tree


@dbt_model
def candidate_silhouettes(
    scaled: Relation,
    candidates: Relation,
    leaves: Relation,
    linkage: Relation,
    config: ClusteringConfig,
) -> pa.Table:
    """Model candidate_silhouettes: silhouettes of every candidate on the evaluation sample."""
    ids, matrix = read_matrix(scaled, config.clustering_features)
    fits, tree = _candidates_and_tree(ids, candidates, leaves, linkage, config)
    evaluation = evaluation_sample(len(matrix), config)
    labelings = candidate_labelings(matrix, fits, tree, config, rows=evaluation)
    every = np.arange(len(evaluation))
    with stage("candidate_silhouettes", f"silhouettes of {len(evaluation)} customers"):
        values = silhouettes_of_candidates(matrix[evaluation], labelings, every)
    return silhouettes_table(ids[evaluation], every, labelings, values)


@dbt_model
def stability_refits(scaled: Relation, plan: Relation, config: ClusteringConfig) -> pa.Table:
    """Model stability_refits: k-means and Ward refitted on bootstrap samples, at every k.

    Each refit labels the evaluation sample; cluster_stability and segment_stability read them.
    Not refitting: empty.
    """
    ids, matrix = read_matrix(scaled, config.clustering_features)
    if scoring_plan(plan, "stability_refits") is not None:
        return refits_table(ids[:0], {}, 0)
    ks = evaluated_range(config, len(matrix))
    refits = refits_by_candidate(matrix, ks, config)
    size = min(len(matrix), config.stability_sample_size)
    return refits_table(ids[evaluation_sample(len(ids), config)], refits, size)


@dbt_model
def cluster_stability(refits: Relation, config: ClusteringConfig) -> pa.Table:
    """Model cluster_stability: the stability of k-means and Ward at every evaluated k.

    The mean pairwise adjusted Rand index of the refits in stability_refits.
    """
    table = refits.to_arrow_table()
    size = int(table["bootstrap_size"][0].as_py()) if table.num_rows else 0
    with stage("cluster_stability", "mean pairwise ARI of the refits"):
        stability = stability_from_refits(refits_from_table(table))
    return stability_table(stability, config.stability_runs, size)


@dbt_model
def cluster_model_selection(
    scaled: Relation,
    candidates: Relation,
    leaves: Relation,
    linkage: Relation,
    silhouettes: Relation,
    stability: Relation,
    plan: Relation,
    config: ClusteringConfig,
) -> pa.Table:
    """Model cluster_model_selection: metrics for every algorithm and k, and the choice.

    With n_clusters auto, the previous registered model's k (segment_model_plan) is kept while
    it is stable.
    """
    ids, matrix = read_matrix(scaled, config.clustering_features)
    fits, tree = _candidates_and_tree(ids, candidates, leaves, linkage, config)
    labelings = candidate_labelings(matrix, fits, tree, config)
    mean_silhouettes = mean_by_candidate(
        silhouettes.order("algorithm, k, customer_id").to_arrow_table()
    )
    registered = scoring_plan(plan, "cluster_model_selection")
    if registered is not None:
        return registered_selection_table(
            matrix, fits, labelings, mean_silhouettes, registered, config
        )
    by_candidate = stability_from_table(stability.to_arrow_table())
    registered_k = plan.to_arrow_table()["k"][0].as_py()
    rows, _ = selection_rows(matrix, fits, tree, labelings, mean_silhouettes, by_candidate, config,
                             registered_k=registered_k)  # fmt: skip
    return pa.Table.from_pylist(rows)


@dbt_model
def cluster_centroids(
    scaled: Relation, candidates: Relation, selection: Relation, scaler: Relation,
    config: ClusteringConfig,
) -> pa.Table:  # fmt: skip
    """Model cluster_centroids: the candidate at the selected k, in scaled and original units."""
    k = selected_k(selection.to_arrow_table())
    fits = candidates_from_table(
        candidates.filter(f"k = {k}").to_arrow_table(), config.clustering_features
    )
    if k not in fits:
        raise ModelError(f"kmeans_candidates has no fit at the selected k={k}")
    centers = fits[k].centers
    _, matrix = read_matrix(scaled, config.clustering_features)
    parameters = parameters_from_table(scaler.to_arrow_table())
    original = invert_scaling(centers, parameters)
    labels, _ = nearest_centroid(matrix, centers)
    sizes = np.bincount(labels, minlength=k)
    return centroid_table(centers, original, sizes, config.clustering_features)


@dbt_model
def customer_clusters(
    scaled: Relation,
    centroids: Relation,
    selection: Relation,
    leaves: Relation,
    linkage: Relation,
    plan: Relation,
    config: ClusteringConfig,
) -> pa.Table:
    """Model customer_clusters: k-means and Ward cluster, distance and PCA per customer.

    Not refitting: no Ward cluster (null), and the registered model's projection.
    """
    k = selected_k(selection.to_arrow_table())
    ids, matrix = read_matrix(scaled, config.clustering_features)
    centers = centroid_matrix(centroids.to_arrow_table(), config.clustering_features)
    with stage("customer_clusters", "assign to nearest centroid"):
        labels, distances = nearest_centroid(matrix, centers)
    registered = scoring_plan(plan, "customer_clusters")
    if registered is not None:
        ward_ids = pa.nulls(len(ids), pa.int64())
        coordinates = project(matrix, registered_projection(registered))
    else:
        with stage("customer_clusters", f"Ward cut at k={k}"):
            tree = ward_tree_from_tables(
                read_ordered(leaves, "customer_id", ids, "hierarchy_leaves"),
                linkage.order("merge_order").to_arrow_table(),
            )
            ward_ids = numbered_cuts(matrix, tree, [k], config.order_feature_index)[k]
            ward_ids = ward_ids.astype(np.int64)
        with stage("customer_clusters", "PCA"):
            coordinates = pca_coordinates(matrix, config.random_state)
    return pa.table(
        {
            "customer_id": ids,
            "cluster_id": (labels + 1).astype(np.int64),
            "hierarchical_cluster_id": ward_ids,
            "distance_to_centroid": distances,
            "pca_1": coordinates[:, 0],
            "pca_2": coordinates[:, 1],
        }
    )


@dbt_model
def customer_silhouettes(
    scaled: Relation,
    silhouettes: Relation,
    clusters: Relation,
    selection: Relation,
    config: ClusteringConfig,
) -> pa.Table:
    """Model customer_silhouettes: the final clusters' silhouettes, from candidate_silhouettes.

    The final clusters are the k-means candidate at the selected k, so their silhouettes on
    the evaluation sample were computed once, with every candidate's; each customer's cluster
    is checked against customer_clusters, and the sample against the evaluation sample of
    today's customers.
    """
    k = selected_k(selection.to_arrow_table())
    ids, _ = read_matrix(scaled, [])
    expected = ids[evaluation_sample(len(ids), config)]
    table = silhouettes.filter(f"algorithm = 'kmeans' and k = {k}").order("customer_id")
    table = table.to_arrow_table().select(["customer_id", "cluster_id", "silhouette"])
    if not np.array_equal(table["customer_id"].to_numpy(), expected):
        raise ModelError(
            "candidate_silhouettes is not on the silhouette sample of today's customers"
        )
    final = clusters.to_arrow_table().select(["customer_id", "cluster_id"])
    joined = table.join(final, "customer_id", right_suffix="_final")
    if joined.num_rows != table.num_rows or not np.array_equal(
        joined["cluster_id"].to_numpy(), joined["cluster_id_final"].to_numpy()
    ):
        raise ModelError(
            "candidate_silhouettes and customer_clusters disagree on the clusters at the "
            f"selected k={k}"
        )
    return table


def _fit_features(
    features: Relation, clusters: Relation, config: ClusteringConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The clustering features in their own units and each customer's cluster, by customer id.

    Raises:
        ModelError: customer_features and customer_clusters hold different customers.

    """
    ids, matrix = read_matrix(features, config.clustering_features)
    table = clusters.order("customer_id").to_arrow_table()
    if not np.array_equal(table["customer_id"].to_numpy(), ids):
        raise ModelError("customer_features and customer_clusters hold different customers")
    return matrix, table["cluster_id"].to_numpy()


def learn_rules(matrix: np.ndarray, clusters: np.ndarray, config: ClusteringConfig) -> RuleSet:
    """The segment rules of ``clusters``, with the rule settings of ``config``."""
    with stage("segment_rule_tree", f"decision tree of depth {config.rule_max_depth}"):
        return fit_rules(
            matrix,
            config.clustering_features,
            clusters,
            config.rule_max_depth,
            config.rule_min_leaf_size,
            config.random_state,
            config.rule_class_weight,
        )


@dbt_model
def segment_rule_tree(
    features: Relation, clusters: Relation, plan: Relation, config: ClusteringConfig
) -> pa.Table:
    """Model segment_rule_tree: the rules (tree leaves) that say each segment in words and SQL.

    Not refitting: the registered model's rules, as they were fitted.
    """
    registered = scoring_plan(plan, "segment_rule_tree")
    if registered is not None:
        return registered_rules(registered)
    matrix, labels = _fit_features(features, clusters, config)
    rule_set = learn_rules(matrix, labels, config)
    assigned = rule_set.assign(dict(zip(config.clustering_features, matrix.T, strict=True)))
    return rules_table(rule_set, labels, assigned)


@dbt_model
def customer_rule_segments(
    features: Relation, rules: Relation, config: ClusteringConfig
) -> pa.Table:
    """Model customer_rule_segments: the rule each customer meets and the segment it assigns.

    The stored rules applied in Python; the macro segment_by_rules applies the same rules in
    SQL, and a dbt test checks the two agree for every customer.
    """
    rule_list = rules_from_table(rules.to_arrow_table())
    ids, matrix = read_matrix(features, config.clustering_features)
    columns = dict(zip(config.clustering_features, matrix.T, strict=True))
    with stage("customer_rule_segments", f"{len(rule_list)} rules on {len(ids)} customers"):
        index = assign_rules(rule_list, columns)
    none = index < 0
    return pa.table(
        {
            "customer_id": ids,
            "rule_id": pa.array(np.array([r.rule_id for r in rule_list])[index], mask=none),
            "rule_cluster_id": pa.array(
                np.array([r.cluster_id for r in rule_list])[index], mask=none
            ),
        }
    )


@dbt_model(parse=parse_clv_config)
def clv_model_parameters(histories: Relation, calibration: Relation, config: ClvConfig) -> pa.Table:
    """Model clv_model_parameters: BG/NBD and Gamma-Gamma fits, or why not.

    Fitted as of the snapshot (for customer_value) and as of the calibration cut-off (for
    clv_validation).
    """
    rows = []
    for label, relation in (("snapshot", histories), ("calibration", calibration)):
        # In customer order: DuckDB hands rows over in no fixed order, and a likelihood summed
        # in another order differs in its last bits, enough to flip a fit at the edge of
        # convergence (a spend model fitted in one build and not in the next).
        table = relation.order("customer_id").to_arrow_table()
        with stage("clv_model_parameters", f"fit BG/NBD and Gamma-Gamma ({label})"):
            fitted = fit_lifetime_value(
                histories_from_table(table),
                config.min_repeat_customers,
                config.min_history_days,
                no_holdout_reason(table) if label == "calibration" else None,
            )
        for reason in {fitted.purchases_reason, fitted.spend_reason} - {None}:
            print(f"[clv_model_parameters] WARNING: {label} fit: {reason}", flush=True)
        rows += parameters_rows(label, fitted, as_of_date(table), config)
    return clv_parameters_table(rows)


@dbt_model(parse=parse_clv_config)
def clv_predictions(histories: Relation, parameters: Relation, config: ClvConfig) -> pa.Table:
    """Model clv_predictions: each customer's P(alive), expected purchases and spend, and CLV."""
    table = histories.order("customer_id").to_arrow_table()
    purchases, spend = fitted_parameters(parameters.to_arrow_table(), "snapshot")
    with stage("clv_predictions", f"values of {table.num_rows} customers"):
        values = customer_values(
            purchases,
            spend,
            histories_from_table(table),
            config.days_per_unit,
            config.horizon_days,
            config.annual_discount_rate,
        )
    return pa.table(
        {
            "customer_id": table["customer_id"],
            "p_alive": pa.array(values.p_alive, from_pandas=True),
            "expected_purchases": pa.array(values.expected_purchases, from_pandas=True),
            "discounted_purchases": pa.array(values.discounted_purchases, from_pandas=True),
            "expected_order_value": pa.array(values.expected_order_value, from_pandas=True),
            "predicted_clv": pa.array(values.predicted_clv, from_pandas=True),
        }
    )


@dbt_model(parse=parse_clv_config)
def clv_holdout_predictions(
    calibration: Relation, parameters: Relation, config: ClvConfig
) -> pa.Table:
    """Model clv_holdout_predictions: the calibration fit's expectations for the holdout.

    Per customer: purchases, and mean spend for repeat customers; clv_validation compares them
    with what the customers did.
    """
    table = calibration.order("customer_id").to_arrow_table()
    purchases, spend = fitted_parameters(parameters.to_arrow_table(), "calibration")
    length = table["holdout_length"][0].as_py() if table.num_rows else 0.0
    expected_purchases, expected_value = holdout_predictions(
        purchases, spend, histories_from_table(table), float(length)
    )
    return pa.table(
        {
            "customer_id": table["customer_id"],
            "predicted_purchases": pa.array(expected_purchases, from_pandas=True),
            "predicted_mean_value": pa.array(expected_value, from_pandas=True),
        }
    )


@dbt_model
def segment_model_plan(registry: Relation | None, config: ClusteringConfig) -> pa.Table:
    """Model segment_model_plan: refit, or score with the latest registered model, and why.

    ``registry``: segment_models as the previous build left it (None before the first build).
    """
    now = utc_now()
    rows = None if registry is None else registry.to_arrow_table().to_pylist()
    plan = decide(rows, config, now)
    if plan.registry_message:
        print(f"[segment_model_plan] WARNING: {plan.registry_message}", flush=True)
    print(f"[segment_model_plan] {plan.refit_reason}", flush=True)
    return pa.Table.from_pylist([plan.row(now)], schema=PLAN_SCHEMA)


@dbt_model
def segment_models(
    plan: Relation,
    features: Relation,
    scaled: Relation,
    scaler: Relation,
    centroids: Relation,
    clusters: Relation,
    archetypes: Relation,
    rules: Relation,
    config: ClusteringConfig,
) -> pa.Table:
    """Model segment_models (incremental): the model this build fitted, with stable segment ids.

    Nothing when the build did not refit. The new clusters are matched with the previous
    model's segments (``ml.identity.match_segments``): a matched one keeps its id and name.
    """
    plan_row = plan.to_arrow_table().to_pylist()[0]
    if not plan_row["refit"]:
        print(f"[segment_models] model {plan_row['model_in_use_id']} scored this build; "
              "nothing registered (var refit is false)", flush=True)  # fmt: skip
        return empty_models_table()
    ids, matrix = read_matrix(features, config.clustering_features)
    # The snapshot date alone: one value, not a second read of every customer's features.
    snapshot_date = features.aggregate("min(snapshot_date)").fetchall()[0][0]
    _, scaled_matrix = read_matrix(scaled, config.clustering_features)
    cluster_table = clusters.order("customer_id").to_arrow_table()
    if not np.array_equal(cluster_table["customer_id"].to_numpy(), ids):
        raise ModelError("customer_features and customer_clusters hold different customers")
    with stage("segment_models", "match segments and register the model"):
        row, summary = register_model(
            plan_row,
            ids,
            matrix,
            scaled_matrix,
            snapshot_date,
            scaler.to_arrow_table(),
            centroids.to_arrow_table(),
            cluster_table,
            archetypes.to_arrow_table(),
            rules.to_arrow_table(),
            config,
            utc_now(),
        )
    print(f"[segment_models] {summary}", flush=True)
    return models_row_table(row)
