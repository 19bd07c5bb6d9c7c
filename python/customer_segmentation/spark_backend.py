"""Spark MLlib backend of the ml models, used when ``dbt.ref()`` returns a Spark DataFrame.

On Databricks, dbt runs the project's Python models on the cluster and ``dbt.ref()`` returns a
Spark DataFrame; ``pipeline`` then calls these functions instead of pulling every customer into
the driver. What runs where:

- scaling: exact Spark aggregates; ``percentile`` interpolates linearly as ``np.quantile`` does,
  so the parameters equal the numpy ones up to float rounding;
- final k-means: MLlib ``KMeans`` (k-means|| initialisation), the best of ``kmeans_n_init``
  seeds by training cost, as scikit-learn's ``n_init`` does;
- Ward hierarchy: exact Ward on the driver up to ``exact_ward_max_customers`` (as on DuckDB),
  above it two-stage: MLlib k-means micro-clusters, then weighted Ward on their centres;
- choosing k (and silhouettes): on a seeded sample of at most ``spark_selection_sample_size``
  customers collected to the driver, with the same code as on DuckDB.

Every output has the columns of its DuckDB twin, so the SQL models downstream
(``scale_features``, ``assign_segment``) run unchanged on both engines. pyspark is imported
lazily: ``make test-spark`` installs it, ``make build`` does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from customer_segmentation.clustering import (
    ClusteringError,
    WardTree,
    check_can_cluster,
    cluster_order,
    cut_linkage,
    fit_ward,
    silhouette_values,
    weighted_ward_linkage,
)
from customer_segmentation.config import ClusteringConfig, check_feature_columns, parse_config
from customer_segmentation.scaling import (
    FeatureScaling,
    check_enough_features,
    check_log_domain,
    check_no_missing,
    checked_scaling,
    invert_scaling,
    parameters_from_table,
    parameters_table,
)
from customer_segmentation.selection import evaluated_range, model_selection
from customer_segmentation.tables import centroid_matrix, centroid_table, linkage_table
from customer_segmentation.timing import stage

if TYPE_CHECKING:
    from pyspark.ml.clustering import KMeansModel
    from pyspark.sql import Column, DataFrame, SparkSession

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RAW_TABLE = "raw.transactions"
KEY = "customer_id"
VECTOR = "_features"
# Micro-clusters only need to be compact, not converged (the DuckDB path uses mini-batch).
MICRO_CLUSTER_MAX_ITER = 20
KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4


def is_spark_dataframe(value: object) -> bool:
    """True for a Spark DataFrame (classic or Spark Connect), without importing pyspark."""
    module = type(value).__module__
    return module.startswith("pyspark.sql") and hasattr(value, "sparkSession")


def _spark_table(frame: DataFrame, table: pa.Table) -> DataFrame:
    """An Arrow table (a few rows: parameters, centroids, metrics) as a Spark DataFrame."""
    return frame.sparkSession.createDataFrame(table)


def _percentiles(column: Column, percentages: Sequence[float]) -> Column:
    from pyspark.sql import functions as sf

    return sf.percentile(column, sf.array(*[sf.lit(float(p)) for p in percentages]))


def fit_scaler_spark(
    frame: DataFrame,
    features: Sequence[str],
    log_features: Sequence[str],
    quantiles: tuple[float, float],
    scaler: str,
) -> list[FeatureScaling]:
    """``scaling.fit_scaler`` on a Spark DataFrame, in three aggregate passes.

    Raises:
        ScalingError: as ``fit_scaler`` (missing values, log1p domain, no spread).

    """
    from pyspark.sql import functions as sf

    from customer_segmentation.scaling import ScalingError

    check_feature_columns(features, frame.columns)
    checks = frame.agg(
        sf.count(sf.lit(1)).alias("n"),
        *[sf.count_if(sf.col(f).isNull()).alias(f"missing_{i}") for i, f in enumerate(features)],
        *[sf.min(sf.col(f).cast("double")).alias(f"min_{i}") for i, f in enumerate(features)],
    ).first()
    if checks["n"] == 0:
        raise ScalingError("no customers to scale: customer_features is empty")
    transforms = {f: "log1p" if f in log_features else "none" for f in features}
    for i, feature in enumerate(features):
        check_no_missing(feature, int(checks[f"missing_{i}"]))
        if transforms[feature] == "log1p":
            check_log_domain(feature, float(checks[f"min_{i}"]))

    def transformed(feature: str) -> Column:
        value = sf.col(feature).cast("double")
        return sf.log1p(value) if transforms[feature] == "log1p" else value

    bounds = frame.agg(
        *[_percentiles(transformed(f), quantiles).alias(f"b_{i}") for i, f in enumerate(features)]
    ).first()

    def clipped(i: int, feature: str) -> Column:
        lower, upper = bounds[f"b_{i}"]
        return sf.least(sf.greatest(transformed(feature), sf.lit(lower)), sf.lit(upper))

    if scaler == "standard":
        spreads = [
            aggregate
            for i, f in enumerate(features)
            for aggregate in (
                sf.avg(clipped(i, f)).alias(f"center_{i}"),
                sf.stddev_pop(clipped(i, f)).alias(f"scale_{i}"),
            )
        ]
    else:
        spreads = [
            _percentiles(clipped(i, f), (0.25, 0.5, 0.75)).alias(f"quartiles_{i}")
            for i, f in enumerate(features)
        ]
    spread = frame.agg(*spreads).first()
    fitted = []
    for i, feature in enumerate(features):
        if scaler == "standard":
            center, scale = spread[f"center_{i}"], spread[f"scale_{i}"]
        else:
            q25, center, q75 = spread[f"quartiles_{i}"]
            scale = q75 - q25
        fitted.append(
            checked_scaling(
                feature, i + 1, transforms[feature], tuple(bounds[f"b_{i}"]), center, scale, scaler
            )
        )
    return check_enough_features(fitted)


def feature_vectors(frame: DataFrame, features: Sequence[str]) -> DataFrame:
    """The customer id and the clustering features as one MLlib vector column."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as sf

    check_feature_columns(features, frame.columns)
    doubles = frame.select(KEY, *[sf.col(f).cast("double").alias(f) for f in features])
    assembler = VectorAssembler(inputCols=list(features), outputCol=VECTOR)
    return assembler.transform(doubles).select(KEY, VECTOR)


def _fit_mllib_kmeans(
    vectors: DataFrame, k: int, seed: int, max_iter: int, init_mode: str = "k-means||"
) -> KMeansModel:
    from pyspark.ml.clustering import KMeans

    estimator = KMeans(
        k=k,
        seed=seed,
        maxIter=max_iter,
        tol=KMEANS_TOL,
        initMode=init_mode,
        featuresCol=VECTOR,
        predictionCol="_micro",
    )
    return estimator.fit(vectors)


def fit_kmeans_spark(
    frame: DataFrame, features: Sequence[str], k: int, random_state: int, n_init: int
) -> tuple[np.ndarray, float]:
    """MLlib k-means, best of ``n_init`` seeds by within-cluster sum of squares.

    Returns:
        The centres (k x features, MLlib's order) and their within-cluster sum of squares.

    """
    vectors = feature_vectors(frame, features).cache()
    try:
        check_can_cluster(vectors.count(), k)
        best: tuple[np.ndarray, float] | None = None
        for run in range(n_init):
            model = _fit_mllib_kmeans(vectors, k, random_state + run, KMEANS_MAX_ITER)
            cost = float(model.summary.trainingCost)
            if best is None or cost < best[1]:
                best = (np.array(model.clusterCenters()), cost)
    finally:
        vectors.unpersist()
    assert best is not None
    return best


def _distances(features: Sequence[str], centers: np.ndarray) -> Column:
    """An array column: Euclidean distance of each row to each centre (as the SQL macro)."""
    from pyspark.sql import functions as sf

    return sf.array(
        *[
            sf.sqrt(
                sum(
                    (
                        sf.pow(sf.col(f).cast("double") - sf.lit(float(center[j])), 2)
                        for j, f in enumerate(features)
                    ),
                    sf.lit(0.0),
                )
            )
            for center in centers
        ]
    )


def nearest_centroid_spark(
    frame: DataFrame, features: Sequence[str], centers: np.ndarray
) -> DataFrame:
    """Customer id, 1-based ``cluster_id`` of the nearest centre (ties: lowest), distance."""
    from pyspark.sql import functions as sf

    distances = frame.select(KEY, _distances(features, centers).alias("_d"))
    return distances.select(
        KEY,
        sf.array_position("_d", sf.array_min("_d")).cast("long").alias("cluster_id"),
        sf.array_min("_d").alias("distance_to_centroid"),
    )


def driver_sample(
    frame: DataFrame, features: Sequence[str], size: int, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """Customer ids and feature matrix of at most ``size`` customers, collected to the driver.

    The sample is the ``size`` customers with the smallest seeded hash of their id: the same
    customers on every run and every partitioning. Rows are ordered by customer id.
    """
    from pyspark.sql import functions as sf

    check_feature_columns(features, frame.columns)
    chosen = frame.select(KEY, *[sf.col(f).cast("double").alias(f) for f in features])
    if frame.count() > size:
        chosen = chosen.orderBy(sf.xxhash64(sf.col(KEY), sf.lit(random_state)), KEY).limit(size)
    table = chosen.orderBy(KEY).toArrow()
    ids = table[KEY].to_numpy()
    columns = [table[f].to_numpy(zero_copy_only=False) for f in features]
    return ids, (np.column_stack(columns) if columns else np.empty((len(ids), 0)))


class SparkWardTree:
    """A Ward tree over leaves that are customers (exact) or MLlib micro-clusters."""

    def __init__(
        self, tree: WardTree, micro_model: KMeansModel | None, leaf_of_micro: np.ndarray
    ) -> None:
        """Keep the tree and, for micro-clusters, how to map a customer to its leaf."""
        self.tree = tree
        self.micro_model = micro_model
        self.leaf_of_micro = leaf_of_micro

    def labels(self, frame: DataFrame, features: Sequence[str], k: int) -> DataFrame:
        """Customer id and 0-based ``_ward`` cluster when the tree is cut into k clusters."""
        from pyspark.sql import functions as sf

        check_can_cluster(len(self.tree.leaf_sizes), k)
        leaf_labels = cut_linkage(self.tree.linkage, [k])[:, 0]
        session = frame.sparkSession
        if self.micro_model is None:
            # Exact: the leaves are the customers, in customer id order.
            ids = frame.select(KEY).orderBy(KEY).toArrow()[KEY].to_numpy()
            mapping = session.createDataFrame(
                [(int(i), int(label)) for i, label in zip(ids, leaf_labels, strict=True)],
                [KEY, "_ward"],
            )
            return frame.select(KEY).join(mapping, KEY)
        micro = session.createDataFrame(
            [
                (int(m), int(leaf_labels[leaf]))
                for m, leaf in enumerate(self.leaf_of_micro)
                if leaf >= 0
            ],
            ["_micro", "_ward"],
        )
        predicted = self.micro_model.transform(feature_vectors(frame, features))
        return predicted.join(sf.broadcast(micro), "_micro").select(KEY, "_ward")


def fit_ward_spark(
    frame: DataFrame,
    features: Sequence[str],
    exact_max_rows: int,
    n_micro_clusters: int,
    random_state: int,
) -> SparkWardTree:
    """Ward on the driver up to ``exact_max_rows`` customers, else on MLlib micro-clusters."""
    n = frame.count()
    if n <= exact_max_rows:
        _, matrix = driver_sample(frame, features, exact_max_rows, random_state)
        return SparkWardTree(
            fit_ward(matrix, exact_max_rows, n_micro_clusters, random_state), None, np.empty(0)
        )
    vectors = feature_vectors(frame, features).cache()
    try:
        model = _fit_mllib_kmeans(
            vectors, min(n_micro_clusters, n), random_state, MICRO_CLUSTER_MAX_ITER
        )
    finally:
        vectors.unpersist()
    sizes = np.array(model.summary.clusterSizes, dtype=np.int64)
    used = np.flatnonzero(sizes > 0)
    leaf_of_micro = np.full(len(sizes), -1)
    leaf_of_micro[used] = np.arange(len(used))
    centers = np.array(model.clusterCenters())[used]
    tree = WardTree(
        weighted_ward_linkage(centers, sizes[used]),
        np.empty(0, dtype=np.int64),
        sizes[used],
        "micro_clusters",
    )
    return SparkWardTree(tree, model, leaf_of_micro)


def _selected_k(selection: DataFrame) -> int:
    rows = selection.filter("is_selected and algorithm = 'kmeans'").collect()
    if len(rows) != 1:
        raise ClusteringError(f"cluster_model_selection has {len(rows)} selected k-means rows")
    return int(rows[0]["k"])


def _ordered_centers(
    frame: DataFrame, config: ClusteringConfig, k: int
) -> tuple[np.ndarray, float]:
    centers, inertia = fit_kmeans_spark(
        frame, config.clustering_features, k, config.random_state, config.kmeans_n_init
    )
    new_ids = cluster_order(centers, config.order_feature_index)
    return centers[np.argsort(new_ids)], inertia


def scaler_parameters(features: DataFrame, settings: Mapping[str, Any]) -> DataFrame:
    """Model scaler_parameters on Spark."""
    config = parse_config(settings)
    with stage("scaler_parameters", "fit scaling (Spark)"):
        evaluated_range(config, features.count())
        fitted = fit_scaler_spark(
            features,
            config.clustering_features,
            config.log_transformed_features,
            config.winsorize_quantiles,
            config.scaler,
        )
    return _spark_table(features, parameters_table(fitted))


def cluster_model_selection(scaled: DataFrame, settings: Mapping[str, Any]) -> DataFrame:
    """Model cluster_model_selection on Spark: the DuckDB code on a seeded driver sample."""
    config = parse_config(settings)
    _, matrix = driver_sample(
        scaled, config.clustering_features, config.spark_selection_sample_size, config.random_state
    )
    rows, _ = model_selection(matrix, config)
    return _spark_table(scaled, pa.Table.from_pylist(rows))


def cluster_centroids(
    scaled: DataFrame, selection: DataFrame, scaler: DataFrame, settings: Mapping[str, Any]
) -> DataFrame:
    """Model cluster_centroids on Spark: MLlib k-means at the selected k."""
    config = parse_config(settings)
    k = _selected_k(selection)
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
    return _spark_table(scaled, table)


def customer_clusters(
    scaled: DataFrame, centroids: DataFrame, selection: DataFrame, settings: Mapping[str, Any]
) -> DataFrame:
    """Model customer_clusters on Spark: nearest centroid, Ward cut, MLlib PCA."""
    from pyspark.ml.feature import PCA
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as sf

    config = parse_config(settings)
    features = config.clustering_features
    k = _selected_k(selection)
    centers = centroid_matrix(centroids.toArrow(), features)
    assigned = nearest_centroid_spark(scaled, features, centers)
    tree = fit_ward_spark(
        scaled,
        features,
        config.exact_ward_max_customers,
        config.ward_micro_clusters,
        config.random_state,
    )
    ward = tree.labels(scaled, features, k)
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


def hierarchy_linkage(scaled: DataFrame, settings: Mapping[str, Any]) -> DataFrame:
    """Model hierarchy_linkage on Spark: the Ward merges of the (two-stage) tree."""
    config = parse_config(settings)
    tree = fit_ward_spark(
        scaled,
        config.clustering_features,
        config.exact_ward_max_customers,
        config.ward_micro_clusters,
        config.random_state,
    ).tree
    return _spark_table(scaled, linkage_table(tree))


def customer_silhouettes(
    scaled: DataFrame, clusters: DataFrame, settings: Mapping[str, Any]
) -> DataFrame:
    """Model customer_silhouettes on Spark: silhouettes of a seeded driver sample."""
    config = parse_config(settings)
    labelled = scaled.join(clusters.select(KEY, "cluster_id"), KEY)
    ids, matrix = driver_sample(
        labelled,
        [*config.clustering_features, "cluster_id"],
        config.silhouette_sample_size,
        config.random_state,
    )
    labels = matrix[:, -1].astype(np.int64)
    values = silhouette_values(matrix[:, :-1], labels)
    return _spark_table(scaled, pa.table({KEY: ids, "cluster_id": labels, "silhouette": values}))


def scale_frame(frame: DataFrame, parameters: Sequence[FeatureScaling]) -> DataFrame:
    """Customer id and scaled features: Spark's twin of the SQL macro ``scale_features``."""
    from pyspark.sql import functions as sf

    columns = []
    for p in parameters:
        value = sf.col(p.feature).cast("double")
        if p.transform == "log1p":
            value = sf.log1p(value)
        clipped = sf.least(sf.greatest(value, sf.lit(p.clip_lower)), sf.lit(p.clip_upper))
        columns.append(((clipped - sf.lit(p.center)) / sf.lit(p.scale)).alias(p.feature))
    return frame.select(KEY, *columns)


def project_clustering_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The clustering vars of ``dbt_project.yml`` (the ``clustering`` config of the models)."""
    import yaml

    variables = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())["vars"]
    variables.update(overrides or {})
    names = [f.name for f in dataclasses.fields(ClusteringConfig)]
    return {name: variables[name] for name in names if name in variables}


def run_ml_stage(session: SparkSession, schema: str, settings: Mapping[str, Any]) -> dict[str, int]:
    """Fit and write the six ml tables from ``schema.customer_features``, as dbt would.

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

    scaler = write("scaler_parameters", scaler_parameters(features, settings))
    parameters = parameters_from_table(scaler.toArrow())
    scaled = scale_frame(features, parameters).cache()
    try:
        selection = write("cluster_model_selection", cluster_model_selection(scaled, settings))
        centroids = write(
            "cluster_centroids", cluster_centroids(scaled, selection, scaler, settings)
        )
        clusters = write(
            "customer_clusters", customer_clusters(scaled, centroids, selection, settings)
        )
        write("hierarchy_linkage", hierarchy_linkage(scaled, settings))
        write("customer_silhouettes", customer_silhouettes(scaled, clusters, settings))
    finally:
        scaled.unpersist()
    return written


def profile_spark_conf(profiles: Path = PROJECT_ROOT / "profiles.yml") -> dict[str, str]:
    """The ``server_side_parameters`` of the ``spark`` target, with ``env_var`` rendered.

    A SparkSession built from these is the one dbt-spark's ``method: session`` would build, so
    dbt run in the same process (or later, on the same metastore) sees the same tables.
    """
    import jinja2
    import yaml

    def env_var(name: str, default: str | None = None) -> str:
        value = os.environ.get(name, default)
        if value is None:
            raise ValueError(f"{profiles}: env var {name} is not set")
        return value

    rendered = jinja2.Template(profiles.read_text()).render(env_var=env_var)
    outputs = yaml.safe_load(rendered)["customer_segmentation"]["outputs"]
    if "spark" not in outputs:
        raise ValueError(f"{profiles}: no spark target")
    return {str(k): str(v) for k, v in outputs["spark"]["server_side_parameters"].items()}


def spark_session(conf: Mapping[str, str] | None = None) -> SparkSession:
    """A local SparkSession with Hive support, configured like the profile's spark target."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in (profile_spark_conf() if conf is None else conf).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def load_raw_transactions(session: SparkSession, path: str | Path, table: str = RAW_TABLE) -> int:
    """Read a transactions file with ``ingest`` (same checks as on DuckDB) into a Spark table.

    This is what the dbt-duckdb plugin does on DuckDB; on Spark the source is a table, and on
    Databricks it usually exists already (point the source at it).

    Returns:
        The number of lines written.

    """
    from customer_segmentation.ingest import read_transactions

    arrow = read_transactions(path).read_all()
    schema = table.split(".")[0] if "." in table else None
    if schema:
        session.sql(f"create schema if not exists {schema}")
    session.createDataFrame(arrow).write.mode("overwrite").saveAsTable(table)
    return arrow.num_rows


def main(argv: list[str] | None = None) -> int:
    """Command line: ``load FILE`` fills the raw table; ``ml`` writes the ml tables."""
    parser = argparse.ArgumentParser(description="The project's steps that dbt-spark cannot run.")
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="read a transactions file into the raw table")
    load.add_argument("path", type=Path)
    load.add_argument("--table", default=RAW_TABLE)
    ml = commands.add_parser("ml", help="fit and write the ml tables (the Python models)")
    ml.add_argument("--schema", default=os.environ.get("DBT_SPARK_SCHEMA", "customer_segmentation"))
    ml.add_argument("--vars", default="{}", help="clustering vars as JSON, as dbt --vars")
    args = parser.parse_args(argv)
    session = spark_session()
    if args.command == "load":
        lines = load_raw_transactions(session, args.path, args.table)
        print(f"{args.table}: {lines:,} lines from {args.path}")
        return 0
    settings = project_clustering_settings(json.loads(args.vars))
    for name, rows in run_ml_stage(session, args.schema, settings).items():
        print(f"{args.schema}.{name}: {rows:,} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
