"""What each dbt Python model in models/ml does, as functions of DuckDB relations.

A dbt Python model only calls one of these with ``dbt.ref(...)`` relations and the
``clustering`` config; the work is in the typed functions of ``scaling``, ``clustering`` and
``selection``. Inputs are read as Arrow, ordered by customer id, because DuckDB's group-by
order varies and the labels would vary with it. When ``dbt.ref(...)`` is a Spark DataFrame
(dbt on Databricks), each function hands over to its twin in ``spark_backend``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from customer_segmentation import spark_backend
from customer_segmentation.clustering import (
    cluster_means,
    cluster_order,
    fit_kmeans,
    fit_ward,
    nearest_centroid,
    pca_coordinates,
    sample_rows,
    silhouette_values,
)
from customer_segmentation.config import ClusteringConfig, check_feature_columns, parse_config
from customer_segmentation.scaling import (
    fit_scaler,
    invert_scaling,
    parameters_from_table,
    parameters_table,
)
from customer_segmentation.selection import evaluated_range, model_selection
from customer_segmentation.spark_backend import is_spark_dataframe
from customer_segmentation.tables import centroid_matrix, centroid_table, linkage_table
from customer_segmentation.timing import stage

F = TypeVar("F", bound=Callable[..., Any])
# ConfigError, ScalingError and ClusteringError (the package's own) are all ValueErrors.
EXPECTED_ERRORS = (ValueError,)


class ModelError(ValueError):
    """A dbt Python model stopped on bad data or settings; the message says which and why."""


def clear_errors(function: F) -> F:
    """Say what went wrong in one line before dbt prints the traceback.

    dbt-duckdb wraps a Python model's exception with its full traceback; the message would
    come last. So the error is printed first, as ``[model] ERROR: ...``, and re-raised with
    the chain cut so the traceback stays short.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except EXPECTED_ERRORS as error:
            message = f"{function.__name__}: {error}"
            print(f"[{function.__name__}] ERROR: {error}", flush=True)
            raise ModelError(message) from None

    return wrapper  # type: ignore[return-value]


class Relation(Protocol):
    """The part of a DuckDB relation these functions use."""

    def order(self, expr: str) -> Relation: ...  # noqa: D102

    def filter(self, expr: str) -> Relation: ...  # noqa: D102

    def to_arrow_table(self) -> pa.Table: ...  # noqa: D102


def read_matrix(relation: Relation, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Customer ids and the feature matrix, ordered by customer id.

    Raises:
        ValueError: a clustering feature is not a column of the relation.

    """
    table = relation.order("customer_id").to_arrow_table()
    check_feature_columns(features, table.column_names)
    ids = table["customer_id"].to_numpy()
    columns = [table[f].cast(pa.float64()).to_numpy(zero_copy_only=False) for f in features]
    matrix = np.column_stack(columns) if columns else np.empty((len(ids), 0))
    return ids, matrix


def selected_k(selection: Relation) -> int:
    """The k marked is_selected in cluster_model_selection."""
    rows = selection.filter("is_selected and algorithm = 'kmeans'").to_arrow_table()
    if rows.num_rows != 1:
        raise ValueError(f"cluster_model_selection has {rows.num_rows} selected k-means rows")
    return int(rows["k"][0].as_py())


@clear_errors
def scaler_parameters(features: Relation, settings: Mapping[str, Any]) -> pa.Table:
    """Model scaler_parameters: fit the scaling on customer_features."""
    if is_spark_dataframe(features):
        return spark_backend.scaler_parameters(features, settings)
    config = parse_config(settings)
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
    return parameters_table(fitted)


@clear_errors
def cluster_model_selection(scaled: Relation, settings: Mapping[str, Any]) -> pa.Table:
    """Model cluster_model_selection: metrics for every algorithm and k, and the choice."""
    if is_spark_dataframe(scaled):
        return spark_backend.cluster_model_selection(scaled, settings)
    config = parse_config(settings)
    _, matrix = read_matrix(scaled, config.clustering_features)
    rows, _ = model_selection(matrix, config)
    return pa.Table.from_pylist(rows)


def _final_kmeans(matrix: np.ndarray, config: ClusteringConfig, k: int) -> np.ndarray:
    """Centres of the final k-means, ordered so row i is cluster_id i + 1."""
    fit = fit_kmeans(matrix, k, config.random_state, config.kmeans_n_init)
    new_ids = cluster_order(fit.centers, config.order_feature_index)
    return fit.centers[np.argsort(new_ids)]


@clear_errors
def cluster_centroids(
    scaled: Relation, selection: Relation, scaler: Relation, settings: Mapping[str, Any]
) -> pa.Table:
    """Model cluster_centroids: the final k-means, one row per cluster and feature."""
    if is_spark_dataframe(scaled):
        return spark_backend.cluster_centroids(scaled, selection, scaler, settings)
    config = parse_config(settings)
    k = selected_k(selection)
    with stage("cluster_centroids", f"final k-means, k={k}"):
        _, matrix = read_matrix(scaled, config.clustering_features)
        centers = _final_kmeans(matrix, config, k)
    parameters = parameters_from_table(scaler.to_arrow_table())
    original = invert_scaling(centers, parameters)
    labels, _ = nearest_centroid(matrix, centers)
    sizes = np.bincount(labels, minlength=k)
    return centroid_table(centers, original, sizes, config.clustering_features)


@clear_errors
def customer_clusters(
    scaled: Relation, centroids: Relation, selection: Relation, settings: Mapping[str, Any]
) -> pa.Table:
    """Model customer_clusters: k-means and Ward cluster, distance and PCA per customer."""
    if is_spark_dataframe(scaled):
        return spark_backend.customer_clusters(scaled, centroids, selection, settings)
    config = parse_config(settings)
    k = selected_k(selection)
    ids, matrix = read_matrix(scaled, config.clustering_features)
    centers = centroid_matrix(centroids.to_arrow_table(), config.clustering_features)
    with stage("customer_clusters", "assign to nearest centroid"):
        labels, distances = nearest_centroid(matrix, centers)
    with stage("customer_clusters", f"Ward cut at k={k}"):
        tree = fit_ward(
            matrix, config.exact_ward_max_customers, config.ward_micro_clusters, config.random_state
        )
        ward_labels = tree.labels(k)
        ward_ids = cluster_order(cluster_means(matrix, ward_labels, k), config.order_feature_index)
    with stage("customer_clusters", "PCA"):
        coordinates = pca_coordinates(matrix, config.random_state)
    return pa.table(
        {
            "customer_id": ids,
            "cluster_id": (labels + 1).astype(np.int64),
            "hierarchical_cluster_id": ward_ids[ward_labels],
            "distance_to_centroid": distances,
            "pca_1": coordinates[:, 0],
            "pca_2": coordinates[:, 1],
        }
    )


@clear_errors
def hierarchy_linkage(scaled: Relation, settings: Mapping[str, Any]) -> pa.Table:
    """Model hierarchy_linkage: the Ward merges, enough to draw a dendrogram."""
    if is_spark_dataframe(scaled):
        return spark_backend.hierarchy_linkage(scaled, settings)
    config = parse_config(settings)
    _, matrix = read_matrix(scaled, config.clustering_features)
    with stage("hierarchy_linkage", "Ward tree"):
        tree = fit_ward(
            matrix, config.exact_ward_max_customers, config.ward_micro_clusters, config.random_state
        )
    return linkage_table(tree)


@clear_errors
def customer_silhouettes(
    scaled: Relation, clusters: Relation, settings: Mapping[str, Any]
) -> pa.Table:
    """Model customer_silhouettes: per-customer silhouette on the fixed seeded sample."""
    if is_spark_dataframe(scaled):
        return spark_backend.customer_silhouettes(scaled, clusters, settings)
    config = parse_config(settings)
    ids, matrix = read_matrix(scaled, config.clustering_features)
    labelled = clusters.order("customer_id").to_arrow_table()
    if not np.array_equal(labelled["customer_id"].to_numpy(), ids):
        raise ValueError("customer_clusters and customer_features_scaled hold different customers")
    labels = labelled["cluster_id"].to_numpy()
    sample = sample_rows(len(ids), config.silhouette_sample_size, config.random_state)
    with stage("customer_silhouettes", f"silhouette of {len(sample)} customers"):
        values = silhouette_values(matrix[sample], labels[sample])
    return pa.table(
        {"customer_id": ids[sample], "cluster_id": labels[sample], "silhouette": values}
    )
