"""Spark MLlib backend of the ml models, used when ``dbt.ref()`` returns a Spark DataFrame.

On Databricks, dbt runs the project's Python models on the cluster and ``dbt.ref()`` returns a
Spark DataFrame; ``customer_segmentation.models`` then hands each model to its twin in
``spark.models``, which uses these functions instead of pulling every customer into the driver.
What runs where:

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

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from customer_segmentation.config import check_feature_columns
from customer_segmentation.ml.kmeans import ClusteringError, check_can_cluster
from customer_segmentation.ml.scaling import (
    FeatureScaling,
    ScalingError,
    check_enough_features,
    check_log_domain,
    check_no_missing,
    checked_scaling,
)

if TYPE_CHECKING:
    from pyspark.ml.clustering import KMeansModel
    from pyspark.sql import Column, DataFrame

KEY = "customer_id"
VECTOR = "_features"
# Micro-clusters only need to be compact, not converged (the DuckDB path uses mini-batch).
MICRO_CLUSTER_MAX_ITER = 20
KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4


def spark_table(frame: DataFrame, table: pa.Table) -> DataFrame:
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


def ward_leaves_spark(
    frame: DataFrame,
    features: Sequence[str],
    exact_max_rows: int,
    n_micro_clusters: int,
    random_state: int,
) -> DataFrame:
    """``ward.ward_leaves`` on Spark: customer id, ``leaf_id`` and ``method``.

    Up to ``exact_max_rows`` customers every customer is a leaf (leaf ids in customer id
    order, as on DuckDB); above, MLlib k-means micro-clusters on every customer, numbered
    0.. over the centres that received one.
    """
    from pyspark.sql import functions as sf

    session = frame.sparkSession
    n = frame.count()
    if n < 2:
        raise ClusteringError(f"{n} customer(s) cannot be clustered")
    if n <= exact_max_rows:
        ids = frame.select(KEY).orderBy(KEY).toArrow()[KEY].to_pylist()
        rows = [(i, leaf, "exact") for leaf, i in enumerate(ids)]
        return session.createDataFrame(rows, [KEY, "leaf_id", "method"])
    vectors = feature_vectors(frame, features).cache()
    try:
        model = _fit_mllib_kmeans(
            vectors, min(n_micro_clusters, n), random_state, MICRO_CLUSTER_MAX_ITER
        )
    finally:
        vectors.unpersist()
    sizes = np.array(model.summary.clusterSizes, dtype=np.int64)
    used = np.flatnonzero(sizes > 0)
    micro = session.createDataFrame(
        [(int(m), leaf) for leaf, m in enumerate(used)], ["_micro", "leaf_id"]
    )
    predicted = model.transform(feature_vectors(frame, features))
    return predicted.join(sf.broadcast(micro), "_micro").select(
        KEY, sf.col("leaf_id").cast("long"), sf.lit("micro_clusters").alias("method")
    )


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
