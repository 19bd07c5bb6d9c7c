"""The Spark twins of the dbt Python models (``customer_segmentation.models``), and the ml stage.

``models.boundary.dbt_model`` calls the twin of the same name, with the parsed config, when
``dbt.ref()`` is a Spark DataFrame (dbt on Databricks). Elsewhere (a local session, EMR,
Dataproc) dbt-spark cannot run Python models, and ``run_ml_stage`` writes the ml tables that
the SQL models read, as dbt would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from customer_segmentation.config import ClusteringConfig
from customer_segmentation.ml.kmeans import check_can_cluster, cluster_order
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
    from pyspark.sql import DataFrame, SparkSession


def _ordered_centers(
    frame: DataFrame, config: ClusteringConfig, k: int
) -> tuple[np.ndarray, float]:
    centers, inertia = fit_kmeans_spark(
        frame, config.clustering_features, k, config.random_state, config.kmeans_n_init
    )
    new_ids = cluster_order(centers, config.order_feature_index)
    return centers[np.argsort(new_ids)], inertia


def scaler_parameters(features: DataFrame, config: ClusteringConfig) -> DataFrame:
    """Model scaler_parameters on Spark."""
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


def kmeans_candidates(scaled: DataFrame, config: ClusteringConfig) -> DataFrame:
    """Model kmeans_candidates on Spark: the k-means sweep on the driver sample."""
    _, matrix = _selection_sample(scaled, config)
    candidates = fit_candidates(matrix, evaluated_range(config, len(matrix)), config)
    return spark_table(scaled, candidates_table(candidates, config.clustering_features))


def hierarchy_leaves(scaled: DataFrame, config: ClusteringConfig) -> DataFrame:
    """Model hierarchy_leaves on Spark: each customer's Ward leaf (itself, or its micro-cluster)."""
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


def cluster_stability(scaled: DataFrame, config: ClusteringConfig) -> DataFrame:
    """Model cluster_stability on Spark: the bootstrap refits on the seeded driver sample."""
    from customer_segmentation.ml.selection import stability_by_candidate
    from customer_segmentation.models.tables import stability_table

    _, matrix = _selection_sample(scaled, config)
    stability = stability_by_candidate(matrix, evaluated_range(config, len(matrix)), config)
    size = min(len(matrix), config.stability_sample_size)
    return spark_table(scaled, stability_table(stability, config.stability_runs, size))


def cluster_model_selection(
    scaled: DataFrame,
    candidates: DataFrame,
    leaves: DataFrame,
    linkage: DataFrame,
    silhouettes: DataFrame,
    stability: DataFrame,
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
    rows, _ = selection_rows(matrix, fits, tree, labelings, means, by_candidate, config)
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
    config: ClusteringConfig,
) -> DataFrame:
    """Model customer_clusters on Spark: nearest centroid, the Ward tree's cut, MLlib PCA."""
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


def run_ml_stage(session: SparkSession, schema: str, config: ClusteringConfig) -> dict[str, int]:
    """Fit and write the ml tables from ``schema.customer_features``, as dbt would.

    The twins run in the DAG's order, each reading the tables the ones before it wrote.

    dbt-spark runs Python models only on Databricks; elsewhere (a local session, EMR, Dataproc)
    this writes the same tables, and ``dbt build --selector spark_after_ml`` then builds the SQL
    models that need them.

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

    scaler = write("scaler_parameters", scaler_parameters(features, config))
    parameters = parameters_from_table(scaler.toArrow())
    scaled = scale_frame(features, parameters).cache()
    try:
        candidates = write("kmeans_candidates", kmeans_candidates(scaled, config))
        leaves = write("hierarchy_leaves", hierarchy_leaves(scaled, config))
        linkage = write("hierarchy_linkage", hierarchy_linkage(scaled, leaves, config))
        silhouettes = write(
            "candidate_silhouettes",
            candidate_silhouettes(scaled, candidates, leaves, linkage, config),
        )
        stability = write("cluster_stability", cluster_stability(scaled, config))
        selection = write(
            "cluster_model_selection",
            cluster_model_selection(
                scaled, candidates, leaves, linkage, silhouettes, stability, config
            ),
        )
        centroids = write(
            "cluster_centroids", cluster_centroids(scaled, candidates, selection, scaler, config)
        )
        clusters = write(
            "customer_clusters",
            customer_clusters(scaled, centroids, selection, leaves, linkage, config),
        )
        write(
            "customer_silhouettes",
            customer_silhouettes(scaled, silhouettes, clusters, selection, config),
        )
    finally:
        scaled.unpersist()
    return written
