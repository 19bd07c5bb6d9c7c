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
    ClusteringError,
    cluster_means,
    cluster_order,
    fit_kmeans,
    fit_ward,
    nearest_centroid,
    pca_coordinates,
    sample_rows,
    silhouette_values,
)
from customer_segmentation.config import (
    ClusteringConfig,
    ConfigError,
    check_feature_columns,
    parse_config,
)
from customer_segmentation.scaling import (
    ScalingError,
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


class ModelError(ValueError):
    """A dbt Python model stopped on bad data or settings; the message says which and why.

    dbt-duckdb reports a Python model's exception as ``traceback.format_exception(error)``, in
    the failing node's line and again in dbt's final summary. A ModelError's Python-level
    ``__traceback__`` reads as None, so that report is the message alone, one line: for an
    expected error the stack says nothing the message does not. (The interpreter still records
    the traceback: ``sys.exc_info()``, pytest and ``raise`` see it.)
    """

    @property  # type: ignore[override]
    def __traceback__(self) -> None:
        return None

    @__traceback__.setter
    def __traceback__(self, value: object) -> None:
        pass


# What bad data or settings raise: the package's own errors. Anything else is a bug and keeps
# its traceback. (ingest.RawFileError is raised while dbt loads the source, not in a model.)
EXPECTED_ERRORS = (ModelError, ConfigError, ScalingError, ClusteringError)


def clear_errors(function: F) -> F:
    """Make the cause of a failed Python model the first line and dbt's summary entry.

    An expected error (`EXPECTED_ERRORS`) is printed as ``[model] ERROR: ...`` when it
    happens and re-raised as a `ModelError` with that message and no traceback, so dbt's
    summary shows the message alone. Any other exception is a bug: it is named in one line
    and re-raised unchanged, so dbt shows its full traceback.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except EXPECTED_ERRORS as error:
            print(f"[{function.__name__}] ERROR: {error}", flush=True)
            raise ModelError(f"{function.__name__}: {error}") from None
        except Exception as error:
            print(
                f"[{function.__name__}] ERROR: unexpected {type(error).__name__}: {error} "
                "(a bug: the traceback follows in dbt's summary)",
                flush=True,
            )
            raise

    return wrapper  # type: ignore[return-value]


class Relation(Protocol):
    """The part of a DuckDB relation these functions use."""

    def order(self, expr: str) -> Relation: ...  # noqa: D102

    def filter(self, expr: str) -> Relation: ...  # noqa: D102

    def to_arrow_table(self) -> pa.Table: ...  # noqa: D102


def _is_numeric(data_type: pa.DataType) -> bool:
    """Whether a column of this type casts to float64 without parsing text."""
    return (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
        or pa.types.is_boolean(data_type)
        or pa.types.is_null(data_type)
    )


def read_matrix(relation: Relation, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Customer ids and the feature matrix, ordered by customer id.

    Raises:
        ConfigError: a clustering feature is not a column of the relation, or not numeric.

    """
    table = relation.order("customer_id").to_arrow_table()
    check_feature_columns(features, table.column_names)
    not_numeric = [
        f"{f} ({table.schema.field(f).type})"
        for f in features
        if not _is_numeric(table.schema.field(f).type)
    ]
    if not_numeric:
        verb = "is" if len(not_numeric) == 1 else "are"
        raise ConfigError(
            f"var clustering_features: {', '.join(not_numeric)} {verb} not numeric; "
            "clustering needs numbers"
        )
    ids = table["customer_id"].to_numpy()
    columns = [table[f].cast(pa.float64()).to_numpy(zero_copy_only=False) for f in features]
    matrix = np.column_stack(columns) if columns else np.empty((len(ids), 0))
    return ids, matrix


def selected_k(selection: Relation) -> int:
    """The k marked is_selected in cluster_model_selection."""
    rows = selection.filter("is_selected and algorithm = 'kmeans'").to_arrow_table()
    if rows.num_rows != 1:
        raise ModelError(f"cluster_model_selection has {rows.num_rows} selected k-means rows")
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
        raise ModelError("customer_clusters and customer_features_scaled hold different customers")
    labels = labelled["cluster_id"].to_numpy()
    sample = sample_rows(len(ids), config.silhouette_sample_size, config.random_state)
    with stage("customer_silhouettes", f"silhouette of {len(sample)} customers"):
        values = silhouette_values(matrix[sample], labels[sample])
    return pa.table(
        {"customer_id": ids[sample], "cluster_id": labels[sample], "silhouette": values}
    )
