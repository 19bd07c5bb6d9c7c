"""Feature scaling: optional log1p, winsorising at quantiles, then standard or robust scaling.

The fitted parameters are stored as a table (``scaler_parameters``, see ``models.tables``) and
applied in SQL (macro ``scale_features``), so Python fits and SQL scores with the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from customer_segmentation.config import Scaler
from customer_segmentation.errors import SegmentationError


class ScalingError(SegmentationError, ValueError):
    """A feature cannot be scaled (missing values, out of the transform's domain, no spread)."""


@dataclass(frozen=True)
class FeatureScaling:
    """How one feature is scaled: ``(clip(transform(x), lower, upper) - center) / scale``."""

    feature: str
    feature_order: int
    transform: str  # "log1p" or "none"
    clip_lower: float
    clip_upper: float
    center: float
    scale: float
    # A feature with no spread carries no information: it is scaled to 0 for every customer
    # (which leaves every distance, and so the clustering, as if it were not there) and says why.
    is_used: bool = True
    unused_reason: str | None = None


# Fewer usable features than this cannot be clustered in any useful way.
MIN_USABLE_FEATURES = 2


def _transform(values: np.ndarray, transform: str) -> np.ndarray:
    return np.log1p(values) if transform == "log1p" else values


def fit_scaler(
    matrix: np.ndarray,
    features: Sequence[str],
    log_features: Sequence[str],
    quantiles: tuple[float, float],
    scaler: Scaler,
) -> list[FeatureScaling]:
    """Fit per-feature scaling on the columns of ``matrix`` (one row per customer).

    A feature with no spread left after winsorising is kept as an unused row (``is_used``
    false, ``unused_reason`` saying why) and scaled to 0, so it cannot move any customer.

    Raises:
        ScalingError: a feature has missing values or negative values <= -1 under log1p, or
            fewer than two features have any spread (the message names them and the values).

    """
    if matrix.ndim != 2 or matrix.shape[1] != len(features):
        raise ScalingError(f"expected {len(features)} feature columns, got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise ScalingError("no customers to scale: customer_features is empty")
    fitted = []
    for index, feature in enumerate(features):
        column = matrix[:, index].astype(float)
        check_no_missing(feature, int(np.isnan(column).sum()))
        transform = "log1p" if feature in log_features else "none"
        if transform == "log1p":
            check_log_domain(feature, float(column.min()))
        transformed = _transform(column, transform)
        lower, upper = np.quantile(transformed, quantiles)
        clipped = np.clip(transformed, lower, upper)
        if scaler == "standard":
            center, scale = float(clipped.mean()), float(clipped.std())
        else:
            q25, median, q75 = np.quantile(clipped, [0.25, 0.5, 0.75])
            center, scale = float(median), float(q75 - q25)
        fitted.append(
            checked_scaling(feature, index + 1, transform, (lower, upper), center, scale, scaler)
        )
    return check_enough_features(fitted)


def check_enough_features(fitted: list[FeatureScaling]) -> list[FeatureScaling]:
    """Refuse a clustering left with fewer than two features that have any spread."""
    used = [p.feature for p in fitted if p.is_used]
    if len(used) < min(MIN_USABLE_FEATURES, len(fitted)):
        reasons = "; ".join(str(p.unused_reason) for p in fitted if not p.is_used)
        raise ScalingError(
            f"{len(used)} of {len(fitted)} clustering features have any spread "
            f"({', '.join(used) or 'none'}), at least {MIN_USABLE_FEATURES} are needed: "
            f"{reasons}"
        )
    return fitted


def check_no_missing(feature: str, missing: int) -> None:
    """Refuse a feature that some customers have no value for (the message says how many)."""
    if missing:
        raise ScalingError(
            f"feature {feature}: {missing} customer(s) have no value; "
            "choose clustering_features without missing values"
        )


def check_log_domain(feature: str, minimum: float) -> None:
    """Refuse log1p of a feature whose smallest value is <= -1 (the message names both)."""
    if minimum <= -1:
        raise ScalingError(
            f"feature {feature}: log1p needs values > -1, found {minimum}; "
            "remove it from log_transformed_features"
        )


def checked_scaling(
    feature: str,
    feature_order: int,
    transform: str,
    clip: tuple[float, float],
    center: float,
    scale: float,
    scaler: Scaler,
) -> FeatureScaling:
    """The fitted parameters of one feature; unused (scaled to 0) when nothing is left to scale.

    A feature with one value left after clipping leaves the clustering: its centre becomes
    that value and its scale 1, so every customer's scaled value is 0, and ``unused_reason``
    says why.

    Raises:
        ScalingError: the interquartile range is 0 although the values differ (robust scaling
            of a mostly constant feature: a choice of scaler, not a feature without spread).

    """
    if not scale > 1e-12:
        spread = "standard deviation" if scaler == "standard" else "interquartile range"
        shown = f"{feature} = {center:g}"
        if transform == "log1p":
            shown = f"log1p({feature}) = {center:g}"
        if clip[1] - clip[0] > 1e-12:
            raise ScalingError(
                f"feature {feature}: {spread} is 0 after winsorising although its values differ "
                f"({shown} for most customers); drop it from clustering_features or use "
                "scaler: standard"
            )
        reason = (
            f"feature {feature}: {spread} is 0 after winsorising (clipped to the "
            f"winsorize_quantiles, every customer has {shown})"
        )
        return FeatureScaling(
            feature=feature,
            feature_order=feature_order,
            transform=transform,
            clip_lower=float(center),
            clip_upper=float(center),
            center=float(center),
            scale=1.0,
            is_used=False,
            unused_reason=reason,
        )
    return FeatureScaling(
        feature=feature,
        feature_order=feature_order,
        transform=transform,
        clip_lower=float(clip[0]),
        clip_upper=float(clip[1]),
        center=float(center),
        scale=float(scale),
    )


def apply_scaling(matrix: np.ndarray, parameters: Sequence[FeatureScaling]) -> np.ndarray:
    """Scale raw feature columns with fitted parameters (the numpy twin of the SQL macro)."""
    columns = []
    for index, p in enumerate(parameters):
        transformed = _transform(matrix[:, index].astype(float), p.transform)
        columns.append((np.clip(transformed, p.clip_lower, p.clip_upper) - p.center) / p.scale)
    return np.column_stack(columns)


def invert_scaling(scaled: np.ndarray, parameters: Sequence[FeatureScaling]) -> np.ndarray:
    """Map scaled values back to original units (clipping cannot be undone)."""
    columns = []
    for index, p in enumerate(parameters):
        transformed = scaled[:, index] * p.scale + p.center
        columns.append(np.expm1(transformed) if p.transform == "log1p" else transformed)
    return np.column_stack(columns)
