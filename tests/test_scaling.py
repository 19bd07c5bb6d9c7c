from __future__ import annotations

import numpy as np
import pytest

from customer_segmentation.ml.scaling import (
    ScalingError,
    apply_scaling,
    fit_scaler,
    invert_scaling,
)
from customer_segmentation.models.tables import parameters_from_table, parameters_table

FEATURES = ["recency_days", "monetary", "return_rate"]


def sample_matrix(n: int = 200, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.integers(1, 365, n), rng.lognormal(6, 1.5, n), rng.beta(0.5, 8, n)]
    ).astype(float)


def test_standard_scaling_centres_and_scales() -> None:
    matrix = sample_matrix()
    fitted = fit_scaler(matrix, FEATURES, ["monetary"], (0.0, 1.0), "standard")
    scaled = apply_scaling(matrix, fitted)
    assert np.allclose(scaled.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(scaled.std(axis=0), 1)
    assert [p.transform for p in fitted] == ["none", "log1p", "none"]
    assert np.allclose(scaled[:, 1], (np.log1p(matrix[:, 1]) - fitted[1].center) / fitted[1].scale)


def test_winsorising_clips_at_the_quantiles() -> None:
    matrix = sample_matrix()
    matrix[0, 1] = 1e9  # an outlier
    fitted = fit_scaler(matrix, FEATURES, ["monetary"], (0.05, 0.95), "standard")
    expected_upper = np.quantile(np.log1p(matrix[:, 1]), 0.95)
    assert fitted[1].clip_upper == pytest.approx(expected_upper)
    scaled = apply_scaling(matrix, fitted)
    assert scaled[0, 1] == pytest.approx((expected_upper - fitted[1].center) / fitted[1].scale)


def test_robust_scaling_uses_median_and_iqr() -> None:
    matrix = sample_matrix()
    fitted = fit_scaler(matrix[:, :2], FEATURES[:2], [], (0.0, 1.0), "robust")
    q25, median, q75 = np.quantile(matrix[:, 0], [0.25, 0.5, 0.75])
    assert fitted[0].center == pytest.approx(median)
    assert fitted[0].scale == pytest.approx(q75 - q25)


def test_inverse_recovers_unclipped_values() -> None:
    matrix = sample_matrix()
    fitted = fit_scaler(matrix, FEATURES, ["monetary"], (0.0, 1.0), "standard")
    assert np.allclose(invert_scaling(apply_scaling(matrix, fitted), fitted), matrix)


def test_parameters_round_trip_through_a_table() -> None:
    fitted = fit_scaler(sample_matrix(), FEATURES, ["monetary"], (0.01, 0.99), "standard")
    assert parameters_from_table(parameters_table(fitted)) == fitted


def test_a_feature_without_spread_is_left_out_and_says_why() -> None:
    matrix = sample_matrix()
    matrix[:, 2] = 0.0
    fitted = fit_scaler(matrix, FEATURES, [], (0.0, 1.0), "standard")
    assert [p.is_used for p in fitted] == [True, True, False]
    assert fitted[2].unused_reason == (
        "feature return_rate: standard deviation is 0 after winsorising "
        "(clipped to the winsorize_quantiles, every customer has return_rate = 0)"
    )
    scaled = apply_scaling(matrix, fitted)
    assert np.all(scaled[:, 2] == 0.0)  # cannot move any customer
    assert np.allclose(scaled[:, :2], apply_scaling(sample_matrix()[:, :2], fitted[:2]))


def test_fewer_than_two_features_with_spread_is_a_clear_error() -> None:
    matrix = sample_matrix()
    matrix[:, 1:] = 5.0
    with pytest.raises(ScalingError, match=r"1 of 3 clustering features have any spread "
                       r"\(recency_days\), at least 2 are needed: feature monetary: standard "
                       r"deviation is 0"):  # fmt: skip
        fit_scaler(matrix, FEATURES, [], (0.0, 1.0), "standard")


def test_robust_scaling_of_a_mostly_zero_feature_suggests_standard() -> None:
    matrix = sample_matrix()
    matrix[:180, 2] = 0.0
    with pytest.raises(ScalingError, match=r"interquartile range is 0.*or use scaler: standard"):
        fit_scaler(matrix, FEATURES, [], (0.0, 1.0), "robust")


def test_missing_values_are_a_clear_error() -> None:
    matrix = sample_matrix()
    matrix[3, 0] = np.nan
    with pytest.raises(ScalingError, match="feature recency_days: 1 customer"):
        fit_scaler(matrix, FEATURES, [], (0.0, 1.0), "standard")


def test_log_of_values_at_or_below_minus_one_is_refused() -> None:
    matrix = sample_matrix()
    matrix[0, 2] = -1.0
    with pytest.raises(ScalingError, match="feature return_rate: log1p needs values > -1"):
        fit_scaler(matrix, FEATURES, ["return_rate"], (0.0, 1.0), "standard")
