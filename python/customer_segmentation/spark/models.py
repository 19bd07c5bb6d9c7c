"""The Spark twins of the dbt Python models (``customer_segmentation.models``), and the ml stage.

``models.boundary.dbt_model`` calls the twin of the same name, with the parsed config, when
``dbt.ref()`` is a Spark DataFrame (dbt on Databricks). Elsewhere (a local session, EMR,
Dataproc) dbt-spark cannot run Python models, and ``run_ml_stage`` writes the ml tables that
the SQL models read, as dbt would.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from customer_segmentation.config import ClusteringConfig, ClvConfig
from customer_segmentation.ml.clv import GammaGammaParameters, bgnbd_expected_purchases
from customer_segmentation.ml.kmeans import check_can_cluster, cluster_order
from customer_segmentation.ml.lifetime_value import (
    FitStatistics,
    fit_lifetime_value_statistics,
    purchase_values,
)
from customer_segmentation.ml.metrics import silhouette_values
from customer_segmentation.ml.scaling import invert_scaling
from customer_segmentation.ml.selection import (
    candidate_labelings,
    evaluated_range,
    evaluation_sample,
    fit_candidates,
)
from customer_segmentation.ml.selection import (
    candidate_silhouettes as silhouettes_of_candidates,
)
from customer_segmentation.ml.ward import WardTree, fit_ward, ward_tree, weighted_ward_linkage
from customer_segmentation.models.boundary import ModelError, selected_k
from customer_segmentation.models.tables import (
    candidates_table,
    centroid_matrix,
    centroid_table,
    linkage_table,
    parameters_from_table,
    parameters_table,
    silhouettes_table,
)
from customer_segmentation.models.value_tables import (
    HistoryError,
    fitted_parameters,
    no_holdout_reason,
    parameters_rows,
)
from customer_segmentation.models.value_tables import (
    parameters_table as clv_parameters_table,
)
from customer_segmentation.spark.backend import (
    KEY,
    VECTOR,
    driver_sample,
    feature_vectors,
    fit_kmeans_spark,
    fit_scaler_spark,
    nearest_centroid_spark,
    scale_frame,
    spark_table,
    ward_leaves_spark,
)
from customer_segmentation.timing import stage

if TYPE_CHECKING:
    import datetime as dt

    from pyspark.sql import Column, DataFrame, SparkSession


def _ordered_centers(
    frame: DataFrame, config: ClusteringConfig, k: int
) -> tuple[np.ndarray, float]:
    centers, inertia = fit_kmeans_spark(
        frame, config.clustering_features, k, config.random_state, config.kmeans_n_init
    )
    new_ids = cluster_order(centers, config.order_feature_index)
    return centers[np.argsort(new_ids)], inertia


def refits_only(plan: DataFrame | None) -> None:
    """Refuse a plan to score with a registered model: the Spark backend always refits.

    Raises:
        ModelError: the plan says not to refit (var refit false).

    """
    if plan is not None and not plan.select("refit").first()[0]:
        raise ModelError(
            "var refit false (score with the registered model) is not available on Spark: "
            "the Spark backend refits on every build"
        )


def scaler_parameters(
    features: DataFrame, plan: DataFrame | None, config: ClusteringConfig
) -> DataFrame:
    """Model scaler_parameters on Spark."""
    refits_only(plan)
    with stage("scaler_parameters", "fit scaling (Spark)"):
        evaluated_range(config, features.count())
        fitted = fit_scaler_spark(
            features,
            config.clustering_features,
            config.log_transformed_features,
            config.winsorize_quantiles,
            config.scaler,
        )
    return spark_table(features, parameters_table(fitted))


def _selection_sample(scaled: DataFrame, config: ClusteringConfig) -> tuple[np.ndarray, np.ndarray]:
    """The seeded driver sample k is chosen on (at most spark_selection_sample_size customers)."""
    return driver_sample(
        scaled, config.clustering_features, config.spark_selection_sample_size, config.random_state
    )


def kmeans_candidates(
    scaled: DataFrame, plan: DataFrame | None, config: ClusteringConfig
) -> DataFrame:
    """Model kmeans_candidates on Spark: the k-means sweep on the driver sample."""
    refits_only(plan)
    _, matrix = _selection_sample(scaled, config)
    candidates = fit_candidates(matrix, evaluated_range(config, len(matrix)), config)
    return spark_table(scaled, candidates_table(candidates, config.clustering_features))


def hierarchy_leaves(
    scaled: DataFrame, plan: DataFrame | None, config: ClusteringConfig
) -> DataFrame:
    """Model hierarchy_leaves on Spark: each customer's Ward leaf (itself, or its micro-cluster)."""
    refits_only(plan)
    return ward_leaves_spark(
        scaled,
        config.clustering_features,
        config.exact_ward_max_customers,
        config.ward_micro_clusters,
        config.random_state,
    )


def candidate_silhouettes(
    scaled: DataFrame,
    candidates: DataFrame,
    leaves: DataFrame,
    linkage: DataFrame,
    config: ClusteringConfig,
) -> DataFrame:
    """Model candidate_silhouettes on Spark: on the driver sample, as the selection scores it.

    On Spark, k is chosen on the driver sample, so the candidates' silhouettes are those of
    the sample's Ward tree and of the sweep (kmeans_candidates) fitted on it.
    """
    from customer_segmentation.models.tables import candidates_from_table

    ids, matrix = _selection_sample(scaled, config)
    fits = candidates_from_table(candidates.toArrow(), config.clustering_features)
    tree = fit_ward(
        matrix, config.exact_ward_max_customers, config.ward_micro_clusters, config.random_state
    )
    evaluation = evaluation_sample(len(matrix), config)
    labelings = candidate_labelings(matrix, fits, tree, config, rows=evaluation)
    every = np.arange(len(evaluation))
    values = silhouettes_of_candidates(matrix[evaluation], labelings, every)
    return spark_table(scaled, silhouettes_table(ids[evaluation], every, labelings, values))


def stability_refits(
    scaled: DataFrame, plan: DataFrame | None, config: ClusteringConfig
) -> DataFrame:
    """Model stability_refits on Spark: the bootstrap refits on the seeded driver sample."""
    refits_only(plan)
    from customer_segmentation.ml.selection import refits_by_candidate
    from customer_segmentation.models.tables import refits_table

    ids, matrix = _selection_sample(scaled, config)
    refits = refits_by_candidate(matrix, evaluated_range(config, len(matrix)), config)
    size = min(len(matrix), config.stability_sample_size)
    evaluation = evaluation_sample(len(ids), config)
    return spark_table(scaled, refits_table(ids[evaluation], refits, size))


def cluster_stability(refits: DataFrame, config: ClusteringConfig) -> DataFrame:
    """Model cluster_stability on Spark: the mean pairwise ARI of the refits, on the driver."""
    from customer_segmentation.ml.selection import stability_from_refits
    from customer_segmentation.models.tables import refits_from_table, stability_table

    table = refits.toArrow()
    size = int(table["bootstrap_size"][0].as_py()) if table.num_rows else 0
    stability = stability_from_refits(refits_from_table(table))
    return spark_table(refits, stability_table(stability, config.stability_runs, size))


def segment_rule_tree(
    features: DataFrame, clusters: DataFrame, plan: DataFrame | None, config: ClusteringConfig
) -> DataFrame:
    """Model segment_rule_tree on Spark: the tree fitted on the selection's driver sample."""
    refits_only(plan)
    from customer_segmentation.models import learn_rules
    from customer_segmentation.models.tables import rules_table

    names = list(config.clustering_features)
    joined = features.join(clusters.select(KEY, "cluster_id"), KEY)
    _, sample = driver_sample(
        joined, [*names, "cluster_id"], config.spark_selection_sample_size, config.random_state
    )
    matrix, labels = sample[:, :-1], sample[:, -1].astype(np.int64)
    rule_set = learn_rules(matrix, labels, config)
    assigned = rule_set.assign(dict(zip(names, matrix.T, strict=True)))
    return spark_table(features, rules_table(rule_set, labels, assigned))


def customer_rule_segments(
    features: DataFrame, rules: DataFrame, config: ClusteringConfig
) -> DataFrame:
    """Model customer_rule_segments on Spark: the stored rules' SQL predicates, in Spark."""
    from pyspark.sql import functions as sf

    from customer_segmentation.models.tables import rules_from_table

    rule_list = rules_from_table(rules.toArrow())
    rule_id = " ".join(f"when {rule.sql()} then {rule.rule_id}" for rule in rule_list)
    cluster = " ".join(f"when {rule.sql()} then {rule.cluster_id}" for rule in rule_list)
    return features.select(
        KEY,
        sf.expr(f"case {rule_id} end").cast("long").alias("rule_id"),
        sf.expr(f"case {cluster} end").cast("long").alias("rule_cluster_id"),
    )


def cluster_model_selection(
    scaled: DataFrame,
    candidates: DataFrame,
    leaves: DataFrame,
    linkage: DataFrame,
    silhouettes: DataFrame,
    stability: DataFrame,
    plan: DataFrame | None,
    config: ClusteringConfig,
) -> DataFrame:
    """Model cluster_model_selection on Spark: the DuckDB code on the seeded driver sample.

    The sample's own Ward tree is fitted here (the full tree of hierarchy_leaves is MLlib's,
    on every customer); the candidates are read from kmeans_candidates.
    """
    from customer_segmentation.ml.selection import selection_rows
    from customer_segmentation.models.tables import (
        candidates_from_table,
        mean_by_candidate,
        stability_from_table,
    )

    _, matrix = _selection_sample(scaled, config)
    fits = candidates_from_table(candidates.toArrow(), config.clustering_features)
    tree = fit_ward(
        matrix, config.exact_ward_max_customers, config.ward_micro_clusters, config.random_state
    )
    labelings = candidate_labelings(matrix, fits, tree, config)
    means = mean_by_candidate(silhouettes.orderBy("algorithm", "k", KEY).toArrow())
    by_candidate = stability_from_table(stability.toArrow())
    registered_k = None if plan is None else plan.select("k").first()[0]
    rows, _ = selection_rows(matrix, fits, tree, labelings, means, by_candidate, config,
                             registered_k=registered_k)  # fmt: skip
    return spark_table(scaled, pa.Table.from_pylist(rows))


def cluster_centroids(
    scaled: DataFrame,
    candidates: DataFrame,
    selection: DataFrame,
    scaler: DataFrame,
    config: ClusteringConfig,
) -> DataFrame:
    """Model cluster_centroids on Spark: MLlib k-means at the selected k, on every customer.

    The candidates were fitted on the driver sample; the final fit is on all customers.
    """
    k = selected_k(selection.toArrow())
    with stage("cluster_centroids", f"final MLlib k-means, k={k}"):
        centers, _ = _ordered_centers(scaled, config, k)
    sizes = {
        row["cluster_id"]: row["count"]
        for row in nearest_centroid_spark(scaled, config.clustering_features, centers)
        .groupBy("cluster_id")
        .count()
        .collect()
    }
    parameters = parameters_from_table(scaler.toArrow())
    original = invert_scaling(centers, parameters)
    counts = np.array([sizes.get(cluster + 1, 0) for cluster in range(k)])
    table = centroid_table(centers, original, counts, config.clustering_features)
    return spark_table(scaled, table)


def customer_clusters(
    scaled: DataFrame,
    centroids: DataFrame,
    selection: DataFrame,
    leaves: DataFrame,
    linkage: DataFrame,
    plan: DataFrame | None,
    config: ClusteringConfig,
) -> DataFrame:
    """Model customer_clusters on Spark: nearest centroid, the Ward tree's cut, MLlib PCA."""
    refits_only(plan)
    from pyspark.ml.feature import PCA
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as sf

    features = config.clustering_features
    k = selected_k(selection.toArrow())
    centers = centroid_matrix(centroids.toArrow(), features)
    assigned = nearest_centroid_spark(scaled, features, centers)
    ward = ward_labels(leaves, linkage, k)
    # Number Ward clusters like k-means ones: by descending mean of the order feature.
    means = (
        scaled.join(ward, KEY)
        .groupBy("_ward")
        .agg(*[sf.avg(sf.col(f).cast("double")).alias(f) for f in features])
        .orderBy("_ward")
        .toArrow()
    )
    mean_matrix = np.column_stack([means[f].to_numpy() for f in features])
    ward_ids = cluster_order(mean_matrix, config.order_feature_index)
    numbering = scaled.sparkSession.createDataFrame(
        [(int(w), int(i)) for w, i in zip(means["_ward"].to_pylist(), ward_ids, strict=True)],
        ["_ward", "hierarchical_cluster_id"],
    )
    pca = PCA(k=2, inputCol=VECTOR, outputCol="_pca").fit(feature_vectors(scaled, features))
    coordinates = (
        pca.transform(feature_vectors(scaled, features))
        .select(KEY, vector_to_array("_pca").alias("_pca"))
        .select(KEY, sf.col("_pca")[0].alias("pca_1"), sf.col("_pca")[1].alias("pca_2"))
    )
    return (
        assigned.join(ward, KEY)
        .join(sf.broadcast(numbering), "_ward")
        .join(coordinates, KEY)
        .select(
            KEY,
            "cluster_id",
            sf.col("hierarchical_cluster_id").cast("long"),
            "distance_to_centroid",
            "pca_1",
            "pca_2",
        )
    )


def hierarchy_linkage(scaled: DataFrame, leaves: DataFrame, config: ClusteringConfig) -> DataFrame:
    """Model hierarchy_linkage on Spark: Ward on the leaves of hierarchy_leaves.

    Exact (every customer a leaf): scipy's Ward on the driver, customers in id order.
    Micro-clusters: weighted Ward on the leaves' means (a Spark aggregate), as on DuckDB.
    """
    from pyspark.sql import functions as sf

    features = config.clustering_features
    first = leaves.select("method").first()
    method = "exact" if first is None else str(first["method"])
    if method == "exact":
        ids, matrix = driver_sample(scaled, features, config.exact_ward_max_customers,
                                    config.random_state)  # fmt: skip
        order = leaves.orderBy(KEY).toArrow()
        if not np.array_equal(order[KEY].to_numpy(), ids):
            raise ModelError("hierarchy_leaves and customer_features_scaled differ")
        tree = ward_tree(matrix, order["leaf_id"].to_numpy(), method)
    else:
        means = (
            scaled.join(leaves.select(KEY, "leaf_id"), KEY)
            .groupBy("leaf_id")
            .agg(
                sf.count(sf.lit(1)).alias("_n"),
                *[sf.avg(sf.col(f).cast("double")).alias(f) for f in features],
            )
            .orderBy("leaf_id")
            .toArrow()
        )
        if not np.array_equal(means["leaf_id"].to_numpy(), np.arange(means.num_rows)):
            raise ModelError("hierarchy_leaves: leaf ids are not 0..n-1")
        sizes = means["_n"].to_numpy().astype(np.int64)
        centers = np.column_stack([means[f].to_numpy() for f in features])
        tree = WardTree(weighted_ward_linkage(centers, sizes), np.empty(0, np.int64), sizes,
                        method)  # fmt: skip
    return spark_table(scaled, linkage_table(tree))


def ward_labels(leaves: DataFrame, linkage: DataFrame, k: int) -> DataFrame:
    """Customer id and 0-based ``_ward`` cluster: the tree of hierarchy_linkage cut into k."""
    from pyspark.sql import functions as sf

    from customer_segmentation.ml.ward import cut_linkage
    from customer_segmentation.models.tables import linkage_matrix

    tree = linkage_matrix(linkage.orderBy("merge_order").toArrow())
    check_can_cluster(len(tree) + 1, k)
    leaf_labels = cut_linkage(tree, [k])[:, 0]
    mapping = leaves.sparkSession.createDataFrame(
        [(leaf, int(label)) for leaf, label in enumerate(leaf_labels)], ["leaf_id", "_ward"]
    )
    return leaves.join(sf.broadcast(mapping), "leaf_id").select(KEY, "_ward")


def customer_silhouettes(
    scaled: DataFrame,
    silhouettes: DataFrame | None,
    clusters: DataFrame,
    selection: DataFrame | None,
    config: ClusteringConfig,
) -> DataFrame:
    """Model customer_silhouettes on Spark: silhouettes of the final clusters on a driver sample.

    The final clusters come from MLlib on every customer, not from the sample's candidates, so
    they are scored here.
    """
    labelled = scaled.join(clusters.select(KEY, "cluster_id"), KEY)
    ids, matrix = driver_sample(
        labelled,
        [*config.clustering_features, "cluster_id"],
        config.silhouette_sample_size,
        config.random_state,
    )
    labels = matrix[:, -1].astype(np.int64)
    values = silhouette_values(matrix[:, :-1], labels)
    return spark_table(scaled, pa.table({KEY: ids, "cluster_id": labels, "silhouette": values}))


# --- lifetime value ----------------------------------------------------------------------------
# The fits read sufficient statistics: distinct (x, t_x, T) and distinct spend pairs (x, m) with
# how many customers share each, grouped in Spark and collected (a few thousand rows however
# many customers); the fit is ml.lifetime_value's, as on DuckDB. Predictions depend on
# (x, t_x, T) only: they are computed on the driver once per distinct triple and joined back.

TRIPLE = ("x", "t_x", "t")


def _spend_rows() -> Column:
    """``Histories.spend_rows``: a repeat purchase and a positive value (null counts as not)."""
    from pyspark.sql import functions as sf

    return sf.coalesce(
        (sf.col("x") > 0) & (sf.col("repeat_mean_value") > 0) & (sf.col("net_value") > 0),
        sf.lit(False),
    )


def _arrow_floats(table: pa.Table, name: str) -> np.ndarray:
    return table[name].cast(pa.float64()).to_numpy(zero_copy_only=False)


def fit_statistics_spark(histories: DataFrame) -> tuple[FitStatistics, dt.date | None]:
    """The grouped statistics of a purchase-history table, and the date it is as of.

    Raises:
        HistoryError: the table mixes several as-of dates or time units (as on DuckDB).

    """
    from pyspark.sql import functions as sf

    summary = histories.agg(
        sf.count_distinct("as_of_date").alias("n_dates"),
        sf.count_distinct("time_unit").alias("n_units"),
        sf.min("first_purchase_date").alias("first_purchase_date"),
        sf.max("as_of_date").alias("as_of_date"),
    ).first()
    for column, n in (("as_of_date", summary["n_dates"]), ("time_unit", summary["n_units"])):
        if n > 1:
            raise HistoryError(f"the purchase histories hold several values of {column}")
    as_of = summary["as_of_date"]
    first = summary["first_purchase_date"]
    history_days = float((as_of - first).days) if as_of is not None else 0.0
    triples = (
        histories.groupBy(*[sf.col(c).cast("double").alias(c) for c in TRIPLE]).count().toArrow()
    )
    spend = histories.where(_spend_rows()).select(
        sf.col("x").cast("double").alias("x"),
        sf.col("repeat_mean_value").cast("double").alias("m"),
    )
    pairs = spend.groupBy("x", "m").count().toArrow()
    # ml.clv.frequency_value_correlation: nan with < 3 rows or no spread (Spark's corr: null).
    moments = spend.agg(sf.corr("x", "m").alias("r"), sf.count(sf.lit(1)).alias("n")).first()
    correlation = math.nan
    if moments["n"] >= 3 and moments["r"] is not None and not math.isnan(moments["r"]):
        correlation = float(np.clip(moments["r"], -1.0, 1.0))
    statistics = FitStatistics(
        x=_arrow_floats(triples, "x"),
        t_x=_arrow_floats(triples, "t_x"),
        t=_arrow_floats(triples, "t"),
        weights=_arrow_floats(triples, "count"),
        spend_x=_arrow_floats(pairs, "x"),
        spend_m=_arrow_floats(pairs, "m"),
        spend_weights=_arrow_floats(pairs, "count"),
        history_days=history_days,
        frequency_value_correlation=correlation,
    )
    return statistics, as_of


def clv_model_parameters(
    histories: DataFrame, calibration: DataFrame, config: ClvConfig
) -> DataFrame:
    """Model clv_model_parameters on Spark: the fits on statistics grouped in Spark."""
    rows = []
    for label, frame in (("snapshot", histories), ("calibration", calibration)):
        with stage("clv_model_parameters", f"fit BG/NBD and Gamma-Gamma ({label}, Spark)"):
            statistics, fitted_at = fit_statistics_spark(frame)
            skip = None
            if label == "calibration":
                periods = frame.select("holdout_length", "as_of_date", "holdout_end").limit(1)
                skip = no_holdout_reason(periods.toArrow())
            fitted = fit_lifetime_value_statistics(
                statistics, config.min_repeat_customers, config.min_history_days, skip
            )
        for reason in {fitted.purchases_reason, fitted.spend_reason} - {None}:
            print(f"[clv_model_parameters] WARNING: {label} fit: {reason}", flush=True)
        rows += parameters_rows(label, fitted, fitted_at, config)
    # The Arrow table has PARAMETERS_SCHEMA's types, so a table of null estimates keeps them.
    return spark_table(histories, clv_parameters_table(rows))


def _gamma_gamma_value(spend: GammaGammaParameters, x: Column, m: Column) -> Column:
    """``ml.clv.gamma_gamma_expected_value`` as a Spark column, for x >= 0 and m >= 0.

    The same double operations in the same order, so the values are the numpy ones; the
    fit's q > 1 (else it has a null_reason) keeps the denominator positive.
    """
    from pyspark.sql import functions as sf

    p, q, v = (sf.lit(float(value)) for value in (spend.p, spend.q, spend.v))
    return p * (v + x * m) / (p * x + q - sf.lit(1.0))


def _by_triple(histories: DataFrame, table: pa.Table) -> DataFrame:
    """The histories joined with values per distinct (x, t_x, T) (a broadcast table)."""
    from pyspark.sql import functions as sf

    keyed = histories.select("*", *[sf.col(c).cast("double").alias(f"_{c}") for c in TRIPLE])
    values = histories.sparkSession.createDataFrame(table)
    return keyed.join(sf.broadcast(values), [f"_{c}" for c in TRIPLE])


def _distinct_triples(histories: DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from pyspark.sql import functions as sf

    table = histories.select(*[sf.col(c).cast("double").alias(c) for c in TRIPLE]).distinct()
    arrow = table.toArrow()
    x, t_x, t = (_arrow_floats(arrow, c) for c in TRIPLE)
    return x, t_x, t


def _doubles(values: np.ndarray) -> pa.Array:
    """float64, nan as null (as the DuckDB models write them)."""
    return pa.array(values, type=pa.float64(), from_pandas=True)


def _null_double() -> Column:
    from pyspark.sql import functions as sf

    return sf.lit(None).cast("double")


def clv_predictions(histories: DataFrame, parameters: DataFrame, config: ClvConfig) -> DataFrame:
    """Model clv_predictions on Spark: values per distinct (x, t_x, T), joined back."""
    from pyspark.sql import functions as sf

    purchases, spend = fitted_parameters(parameters.toArrow(), "snapshot")
    columns = (
        "p_alive", "expected_purchases", "discounted_purchases", "expected_order_value",
        "predicted_clv",
    )  # fmt: skip
    if purchases is None:
        return histories.select(KEY, *[_null_double().alias(c) for c in columns])
    x, t_x, t = _distinct_triples(histories)
    with stage("clv_predictions", f"values of {len(x)} distinct (x, t_x, T) (Spark)"):
        values = purchase_values(
            purchases, x, t_x, t, config.days_per_unit, config.horizon_days,
            config.annual_discount_rate,
        )  # fmt: skip
    table = {"_x": x, "_t_x": t_x, "_t": t, "p_alive": _doubles(values.p_alive),
             "expected_purchases": _doubles(values.expected_purchases),
             "discounted_purchases": _doubles(values.discounted_purchases)}  # fmt: skip
    joined = _by_triple(histories, pa.table(table))
    if spend is None:
        order_value = _null_double()
        clv = _null_double()
    else:
        # expected_order_values: the population mean without a usable repeat purchase, 0
        # for a customer whose net value is 0.
        rows = _spend_rows()
        value = _gamma_gamma_value(
            spend,
            sf.when(rows, sf.col("x").cast("double")).otherwise(sf.lit(0.0)),
            sf.when(rows, sf.col("repeat_mean_value").cast("double")).otherwise(sf.lit(0.0)),
        )
        order_value = sf.when(sf.col("net_value") > 0, value).otherwise(sf.lit(0.0))
        clv = order_value * sf.col("discounted_purchases")
    return joined.select(
        KEY,
        "p_alive",
        "expected_purchases",
        "discounted_purchases",
        order_value.alias("expected_order_value"),
        clv.alias("predicted_clv"),
    )


def clv_holdout_predictions(
    calibration: DataFrame, parameters: DataFrame, config: ClvConfig
) -> DataFrame:
    """Model clv_holdout_predictions on Spark: holdout purchases per distinct (x, t_x, T)."""
    from pyspark.sql import functions as sf

    purchases, spend = fitted_parameters(parameters.toArrow(), "calibration")
    mean_value = _null_double()
    if spend is not None:
        # holdout_predictions: spend only on the spend rows, null elsewhere.
        value = _gamma_gamma_value(
            spend, sf.col("x").cast("double"), sf.col("repeat_mean_value").cast("double")
        )
        mean_value = sf.when(_spend_rows(), value)
    if purchases is None:
        return calibration.select(
            KEY,
            _null_double().alias("predicted_purchases"),
            mean_value.alias("predicted_mean_value"),
        )
    length = calibration.select(sf.max("holdout_length").cast("double")).first()[0]
    length = 0.0 if length is None else float(length)
    x, t_x, t = _distinct_triples(calibration)
    expected = bgnbd_expected_purchases(purchases, length, x, t_x, t)
    table = pa.table({"_x": x, "_t_x": t_x, "_t": t, "predicted_purchases": _doubles(expected)})
    return _by_triple(calibration, table).select(
        KEY, "predicted_purchases", mean_value.alias("predicted_mean_value")
    )


def segment_model_plan(registry: DataFrame | None, config: ClusteringConfig) -> DataFrame:
    """Model segment_model_plan on Spark: the DuckDB decision on the registry's few rows.

    The Spark backend always refits: a plan to score with a registered model stops here.
    """
    from pyspark.sql import SparkSession

    from customer_segmentation.models.registry import PLAN_SCHEMA, decide, utc_now

    now = utc_now()
    plan = decide(None if registry is None else registry.toArrow().to_pylist(), config, now)
    if plan.registry_message:
        print(f"[segment_model_plan] WARNING: {plan.registry_message}", flush=True)
    print(f"[segment_model_plan] {plan.refit_reason}", flush=True)
    session = SparkSession.getActiveSession() if registry is None else registry.sparkSession
    frame = session.createDataFrame(pa.Table.from_pylist([plan.row(now)], schema=PLAN_SCHEMA))
    refits_only(frame)
    return frame


def segment_models(
    plan: DataFrame,
    features: DataFrame,
    scaled: DataFrame | None,
    scaler: DataFrame,
    centroids: DataFrame,
    clusters: DataFrame,
    archetypes: DataFrame,
    rules: DataFrame,
    config: ClusteringConfig,
) -> DataFrame:
    """Model segment_models on Spark: the DuckDB registration, on every customer's features.

    The customers' features and clusters are collected to the driver (the fingerprint and the
    training distributions need all of them); the scaled matrix is recomputed there.
    """
    from customer_segmentation.ml.scaling import apply_scaling
    from customer_segmentation.models.registry import models_row_table, register_model, utc_now

    del scaled
    names = list(config.clustering_features)
    table = features.select(KEY, "snapshot_date", *names).orderBy(KEY).toArrow()
    ids = table[KEY].to_numpy()
    matrix = np.column_stack([table[n].to_numpy().astype(float) for n in names])
    parameters = parameters_from_table(scaler.toArrow())
    cluster_table = clusters.select(KEY, "cluster_id", "distance_to_centroid").orderBy(KEY)
    row, summary = register_model(
        plan.toArrow().to_pylist()[0],
        ids,
        matrix,
        apply_scaling(matrix, parameters),
        table["snapshot_date"][0].as_py() if len(ids) else None,
        scaler.toArrow(),
        centroids.toArrow(),
        cluster_table.toArrow(),
        archetypes.toArrow(),
        rules.toArrow(),
        config,
        utc_now(),
    )
    print(f"[segment_models] {summary}", flush=True)
    return spark_table(features, models_row_table(row))


def register_stage(session: SparkSession, schema: str, config: ClusteringConfig) -> dict[str, int]:
    """Append this build's model to ``schema.segment_models``, as dbt's incremental model would.

    Runs after ``run_ml_stage`` and a dbt build of ``cluster_archetypes`` (the fit's naming, a
    SQL model), which the registration reads.
    """

    def table(name: str) -> DataFrame:
        return session.table(f"{schema}.{name}")

    frame = segment_models(
        table("segment_model_plan"), table("customer_features"), None,
        table("scaler_parameters"), table("cluster_centroids"), table("customer_clusters"),
        table("cluster_archetypes"), table("segment_rule_tree"), config,
    )  # fmt: skip
    name = f"{schema}.segment_models"
    exists = session.catalog.tableExists(name)
    model_id = frame.select("model_id").first()[0]
    if exists and session.table(name).filter(f"model_id = {model_id}").count():
        raise ModelError(
            f"model {model_id} is already in {name}: run the ml stage again before registering"
        )
    frame.write.mode("append" if exists else "overwrite").saveAsTable(name)
    return {"segment_models": session.table(name).count()}


def run_ml_stage(
    session: SparkSession, schema: str, config: ClusteringConfig, clv: ClvConfig
) -> dict[str, int]:
    """Fit and write the ml tables, as dbt would.

    The clustering models read ``schema.customer_features``; the lifetime-value models
    ``schema.customer_purchase_histories`` and ``schema.clv_calibration_histories``.

    The twins run in the DAG's order, each reading the tables the ones before it wrote.

    dbt-spark runs Python models only on Databricks; elsewhere (a local session, EMR, Dataproc)
    this writes the same tables; ``dbt build --select cluster_archetypes`` and
    ``register_stage`` then register the model, and ``dbt build --selector spark_after_ml``
    builds the SQL models that need them.

    Returns:
        Rows written per table.

    """
    features = session.table(f"{schema}.customer_features")
    written: dict[str, int] = {}

    def write(name: str, frame: DataFrame) -> DataFrame:
        frame.write.mode("overwrite").saveAsTable(f"{schema}.{name}")
        table = session.table(f"{schema}.{name}")
        written[name] = table.count()
        return table

    registry = f"{schema}.segment_models"
    plan = write(
        "segment_model_plan",
        segment_model_plan(
            session.table(registry) if session.catalog.tableExists(registry) else None, config
        ),
    )
    scaler = write("scaler_parameters", scaler_parameters(features, plan, config))
    parameters = parameters_from_table(scaler.toArrow())
    scaled = scale_frame(features, parameters).cache()
    try:
        candidates = write("kmeans_candidates", kmeans_candidates(scaled, plan, config))
        leaves = write("hierarchy_leaves", hierarchy_leaves(scaled, plan, config))
        linkage = write("hierarchy_linkage", hierarchy_linkage(scaled, leaves, config))
        silhouettes = write(
            "candidate_silhouettes",
            candidate_silhouettes(scaled, candidates, leaves, linkage, config),
        )
        refits = write("stability_refits", stability_refits(scaled, plan, config))
        stability = write("cluster_stability", cluster_stability(refits, config))
        selection = write(
            "cluster_model_selection",
            cluster_model_selection(
                scaled, candidates, leaves, linkage, silhouettes, stability, plan, config
            ),
        )
        centroids = write(
            "cluster_centroids", cluster_centroids(scaled, candidates, selection, scaler, config)
        )
        clusters = write(
            "customer_clusters",
            customer_clusters(scaled, centroids, selection, leaves, linkage, plan, config),
        )
        write(
            "customer_silhouettes",
            customer_silhouettes(scaled, silhouettes, clusters, selection, config),
        )
        rules = write("segment_rule_tree", segment_rule_tree(features, clusters, plan, config))
        write("customer_rule_segments", customer_rule_segments(features, rules, config))
    finally:
        scaled.unpersist()
    histories = session.table(f"{schema}.customer_purchase_histories")
    calibration = session.table(f"{schema}.clv_calibration_histories")
    clv_parameters = write(
        "clv_model_parameters", clv_model_parameters(histories, calibration, clv)
    )
    write("clv_predictions", clv_predictions(histories, clv_parameters, clv))
    write("clv_holdout_predictions", clv_holdout_predictions(calibration, clv_parameters, clv))
    return written
