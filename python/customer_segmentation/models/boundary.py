"""Where a dbt Python model meets the package: errors, backend choice and reading relations.

``dbt_model`` wraps each function of ``customer_segmentation.models``: it parses the
``clustering`` config once, hands a Spark DataFrame to the twin of the same name in
``customer_segmentation.spark.models`` (imported only then), and turns an expected error
(a ``SegmentationError``) into one clear line.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from customer_segmentation.config import ConfigError, check_feature_columns, parse_config
from customer_segmentation.errors import SegmentationError


class ModelError(SegmentationError, ValueError):
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


def clear_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """Make the cause of a failed Python model the first line and dbt's summary entry.

    A ``SegmentationError`` (bad data or settings) is printed as ``[model] ERROR: ...`` when it
    happens and re-raised as a `ModelError` with that message and no traceback, so dbt's
    summary shows the message alone. Any other exception is a bug: it is named in one line and
    re-raised unchanged, so dbt shows its full traceback.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except SegmentationError as error:
            print(f"[{function.__name__}] ERROR: {error}", flush=True)
            raise ModelError(f"{function.__name__}: {error}") from None
        except Exception as error:
            print(
                f"[{function.__name__}] ERROR: unexpected {type(error).__name__}: {error} "
                "(a bug: the traceback follows in dbt's summary)",
                flush=True,
            )
            raise

    return wrapper


def is_spark_dataframe(value: object) -> bool:
    """True for a Spark DataFrame (classic or Spark Connect), without importing pyspark."""
    module = type(value).__module__
    return module.startswith("pyspark.sql") and hasattr(value, "sparkSession")


def dbt_model(
    function: Callable[..., Any] | None = None,
    *,
    parse: Callable[[Any], Any] = parse_config,
) -> Any:
    """The boundary of one dbt Python model: ``function(*relations, config)``.

    The wrapper takes dbt's relations and the raw config dict (``clustering``, or ``clv`` with
    ``parse=parse_clv_config``), parses the dict once, and calls ``function`` on DuckDB
    relations, or the Spark twin of the same name when the first relation is a Spark
    DataFrame; errors as ``clear_errors``.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any) -> Any:
            *relations, settings = args
            config = parse(settings)
            if relations and is_spark_dataframe(relations[0]):
                spark_models = importlib.import_module("customer_segmentation.spark.models")
                return getattr(spark_models, function.__name__)(*relations, config)
            return function(*relations, config)

        return clear_errors(wrapper)

    return decorate(function) if function is not None else decorate


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


def read_ordered(relation: Relation, order: str, ids: np.ndarray, source: str) -> pa.Table:
    """A per-customer table ordered by ``order``, checked to hold exactly ``ids`` in that order.

    Raises:
        ModelError: the table holds other customers (an upstream table is out of date).

    """
    table = relation.order(order).to_arrow_table()
    if not np.array_equal(table["customer_id"].to_numpy(), ids):
        raise ModelError(f"{source} and customer_features_scaled hold different customers")
    return table


def selected_k(selection: pa.Table) -> int:
    """The k that ``cluster_model_selection`` marks selected: the one place that says it.

    Raises:
        ModelError: the table does not mark exactly one k-means row selected.

    """
    chosen = {
        row["k"]
        for row in selection.select(["algorithm", "k", "is_selected"]).to_pylist()
        if row["is_selected"] and row["algorithm"] == "kmeans"
    }
    if len(chosen) != 1:
        raise ModelError(f"cluster_model_selection has {len(chosen)} selected k-means rows")
    return int(chosen.pop())
