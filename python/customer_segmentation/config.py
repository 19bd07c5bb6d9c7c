"""Clustering settings: dbt vars, passed to the Python models as the ``clustering`` config dict.

Every value is validated here so that a bad var fails with a message naming the var and the
value, before any work is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from customer_segmentation.errors import SegmentationError

Scaler = Literal["standard", "robust"]


class ConfigError(SegmentationError, ValueError):
    """A clustering var has a value the pipeline cannot use."""


@dataclass(frozen=True)
class ClusteringConfig:
    """Validated clustering settings (names match the dbt vars)."""

    clustering_features: tuple[str, ...]
    log_transformed_features: tuple[str, ...]
    winsorize_quantiles: tuple[float, float]
    scaler: Scaler
    k_min: int
    k_max: int
    n_clusters: int | None  # None: choose k automatically
    random_state: int
    kmeans_n_init: int
    silhouette_sample_size: int
    stability_runs: int
    stability_sample_size: int
    stability_threshold: float
    exact_ward_max_customers: int
    ward_micro_clusters: int
    cluster_order_feature: str
    # Spark backend only: k is chosen on at most this many customers collected to the driver.
    spark_selection_sample_size: int = 200_000
    # Segment rules: the decision tree's depth, and the fewest customers a rule covers (a
    # count, or below 1 a share of the customers).
    rule_max_depth: int = 3
    rule_min_leaf_size: float = 0.01
    # balanced: each segment weighs the same in the tree, so small ones get rules of their own.
    rule_class_weight: Literal["balanced", "none"] = "balanced"
    # Model registry: refit (true) or score with the latest registered model (false); a model
    # older than refit_after_days is refitted anyway; a new cluster whose centre is farther than
    # segment_match_max_distance (scaled units) from every previous segment is a new segment.
    refit: bool = True
    refit_after_days: float | None = None
    segment_match_max_distance: float = 1.0
    # With n_clusters auto, a refit keeps the previous registered model's k while it is stable.
    keep_registered_k: bool = True

    @property
    def order_feature_index(self) -> int:
        """Column index of the feature that numbers clusters (descending centroid)."""
        return self.clustering_features.index(self.cluster_order_feature)


def check_feature_columns(features: Sequence[str], columns: Sequence[str]) -> None:
    """Refuse clustering features that are not columns of customer_features.

    Raises:
        ConfigError: naming the missing features and the columns available.

    """
    missing = [f for f in features if f not in columns]
    if missing:
        raise ConfigError(
            f"clustering_features {missing} are not columns of customer_features "
            f"(available: {', '.join(columns)})"
        )


def _int(values: Mapping[str, Any], name: str, minimum: int) -> int:
    value = values.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"var {name}: expected a whole number >= {minimum}, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(
            f"var {name}: expected a whole number >= {minimum}, got {value!r}"
        ) from None
    if number < minimum:
        raise ConfigError(f"var {name}: expected a whole number >= {minimum}, got {number}")
    return number


def _float(values: Mapping[str, Any], name: str, low: float, high: float) -> float:
    value = values.get(name)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(
            f"var {name}: expected a number in [{low}, {high}], got {value!r}"
        ) from None
    if not low <= number <= high:
        raise ConfigError(f"var {name}: expected a number in [{low}, {high}], got {number}")
    return number


def _names(values: Mapping[str, Any], name: str, allow_empty: bool) -> tuple[str, ...]:
    value = values.get(name)
    if value is None and allow_empty:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"var {name}: expected a list of column names, got {value!r}")
    names = tuple(str(v) for v in value)
    if not names and not allow_empty:
        raise ConfigError(f"var {name}: the list is empty")
    if len(set(names)) != len(names):
        raise ConfigError(f"var {name}: a column is listed twice in {list(names)}")
    return names


def parse_config(values: Mapping[str, Any]) -> ClusteringConfig:
    """Validate the clustering vars.

    Raises:
        ConfigError: naming the var and the value at fault.

    """
    features = _names(values, "clustering_features", allow_empty=False)
    log_features = _names(values, "log_transformed_features", allow_empty=True)
    unknown = [f for f in log_features if f not in features]
    if unknown:
        raise ConfigError(
            f"var log_transformed_features: {unknown} not in clustering_features {list(features)}"
        )

    quantiles = values.get("winsorize_quantiles")
    if not isinstance(quantiles, Sequence) or isinstance(quantiles, str) or len(quantiles) != 2:
        raise ConfigError(f"var winsorize_quantiles: expected [low, high], got {quantiles!r}")
    low, high = (float(q) for q in quantiles)
    if not 0 <= low < high <= 1:
        raise ConfigError(
            f"var winsorize_quantiles: expected 0 <= low < high <= 1, got [{low}, {high}]"
        )

    scaler = values.get("scaler")
    if scaler not in ("standard", "robust"):
        raise ConfigError(f"var scaler: expected 'standard' or 'robust', got {scaler!r}")

    k_min = _int(values, "k_min", 2)
    k_max = _int(values, "k_max", 2)
    if k_max < k_min:
        raise ConfigError(f"vars k_min/k_max: k_min ({k_min}) is greater than k_max ({k_max})")
    raw_n = values.get("n_clusters")
    n_clusters: int | None
    if raw_n is None or (isinstance(raw_n, str) and raw_n.strip().lower() == "auto"):
        n_clusters = None
    else:
        n_clusters = _int(values, "n_clusters", 2)
        if not k_min <= n_clusters <= k_max:
            raise ConfigError(
                f"var n_clusters: {n_clusters} is outside k_min..k_max ({k_min}..{k_max}); "
                "widen the range so the chosen k is evaluated too"
            )

    order_feature = values.get("cluster_order_feature") or (
        "monetary" if "monetary" in features else features[0]
    )
    if order_feature not in features:
        raise ConfigError(
            f"var cluster_order_feature: {order_feature!r} not in clustering_features"
        )

    return ClusteringConfig(
        clustering_features=features,
        log_transformed_features=log_features,
        winsorize_quantiles=(low, high),
        scaler=scaler,
        k_min=k_min,
        k_max=k_max,
        n_clusters=n_clusters,
        random_state=_int(values, "random_state", 0),
        kmeans_n_init=_int(values, "kmeans_n_init", 10),
        silhouette_sample_size=_int(values, "silhouette_sample_size", 100),
        stability_runs=_int(values, "stability_runs", 5),
        stability_sample_size=_int(values, "stability_sample_size", 100),
        stability_threshold=_float(values, "stability_threshold", 0.0, 1.0),
        exact_ward_max_customers=_int(values, "exact_ward_max_customers", 2),
        ward_micro_clusters=_int(values, "ward_micro_clusters", 2),
        cluster_order_feature=str(order_feature),
        spark_selection_sample_size=(
            _int(values, "spark_selection_sample_size", 100)
            if values.get("spark_selection_sample_size") is not None
            else ClusteringConfig.spark_selection_sample_size
        ),
        rule_max_depth=(
            _int(values, "rule_max_depth", 1)
            if values.get("rule_max_depth") is not None
            else ClusteringConfig.rule_max_depth
        ),
        rule_min_leaf_size=_min_leaf_size(values),
        rule_class_weight=_class_weight(values),
        refit=_bool(values, "refit", ClusteringConfig.refit),
        keep_registered_k=_bool(values, "keep_registered_k", ClusteringConfig.keep_registered_k),
        refit_after_days=_optional_float(values, "refit_after_days"),
        segment_match_max_distance=(
            _float(values, "segment_match_max_distance", 0.0, math.inf)
            if values.get("segment_match_max_distance") is not None
            else ClusteringConfig.segment_match_max_distance
        ),
    )


def _bool(values: Mapping[str, Any], name: str, default: bool) -> bool:
    """A true/false var (dbt renders a YAML config value as text: 'True', 'false', ...)."""
    value = values.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ConfigError(f"var {name}: expected true or false, got {value!r}")


def _optional_float(values: Mapping[str, Any], name: str) -> float | None:
    """A number of days >= 0, or None when the var is null."""
    value = values.get(name)
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"var {name}: expected a number of days or null, got {value!r}") from None
    if not number >= 0:
        raise ConfigError(f"var {name}: expected a number of days >= 0 or null, got {value!r}")
    return number


def _class_weight(values: Mapping[str, Any]) -> Literal["balanced", "none"]:
    """Var rule_class_weight: balanced or none."""
    value = values.get("rule_class_weight")
    if value is None:
        return ClusteringConfig.rule_class_weight
    if value not in ("balanced", "none"):
        raise ConfigError(f"var rule_class_weight: expected 'balanced' or 'none', got {value!r}")
    return value


def _min_leaf_size(values: Mapping[str, Any]) -> float:
    """Var rule_min_leaf_size: a share of the customers in (0, 1), or a whole count >= 1."""
    value = values.get("rule_min_leaf_size")
    if value is None:
        return ClusteringConfig.rule_min_leaf_size
    message = (
        f"var rule_min_leaf_size: expected a share in (0, 1) or a whole number >= 1, got {value!r}"
    )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(message) from None
    if isinstance(value, bool) or not (0 < number < 1 or (number >= 1 and number.is_integer())):
        raise ConfigError(message)
    return number


TimeUnit = Literal["day", "week"]
DAYS_PER_UNIT: dict[str, int] = {"day": 1, "week": 7}


@dataclass(frozen=True)
class ClvConfig:
    """Validated lifetime-value settings (names match the dbt vars without ``clv_``)."""

    time_unit: TimeUnit
    horizon_days: int
    annual_discount_rate: float
    min_repeat_customers: int
    min_history_days: int

    @property
    def days_per_unit(self) -> int:
        """Days in one time unit: t_x, T and the BG/NBD alpha are in this unit."""
        return DAYS_PER_UNIT[self.time_unit]

    @property
    def horizon(self) -> float:
        """The horizon in the time unit."""
        return self.horizon_days / self.days_per_unit


def parse_clv_config(values: Mapping[str, Any]) -> ClvConfig:
    """Validate the lifetime-value vars (the ``clv`` config dict of the clv models).

    Raises:
        ConfigError: naming the var and the value at fault.

    """
    unit = values.get("clv_time_unit")
    if unit not in DAYS_PER_UNIT:
        raise ConfigError(f"var clv_time_unit: expected 'day' or 'week', got {unit!r}")
    return ClvConfig(
        time_unit=unit,
        horizon_days=_int(values, "clv_horizon_days", 1),
        annual_discount_rate=_float(values, "clv_annual_discount_rate", 0.0, 0.99),
        min_repeat_customers=_int(values, "clv_min_repeat_customers", 1),
        min_history_days=_int(values, "clv_min_history_days", 1),
    )
