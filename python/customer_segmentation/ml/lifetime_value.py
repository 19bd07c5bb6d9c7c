"""Lifetime value per customer: when to fit, and the values the fitted models give.

``ml.clv`` holds the two models (BG/NBD for purchases, Gamma-Gamma for spend). This module
decides whether the data can carry them (enough history, enough repeat customers, a fit that
converged) and says why not when they cannot, so that thin data gives null values with a
reason rather than numbers nobody should read; then it computes each customer's values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from customer_segmentation.ml.clv import (
    BgNbdParameters,
    ClvFit,
    GammaGammaParameters,
    bgnbd_expected_purchases,
    bgnbd_p_alive,
    discounted_expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    frequency_value_correlation,
    gamma_gamma_expected_value,
)

# A Gamma-Gamma q beyond this when the fit fails: the search ran along the ridge of q, v -> inf.
SPEND_RIDGE_Q = 1e3


@dataclass(frozen=True)
class Histories:
    """Per-customer purchase histories as of one date (rows in any fixed order).

    ``x`` repeat purchases, ``t_x`` and ``t`` (T) in the time unit; ``repeat_mean_value`` the
    mean net value of the repeat purchases (nan where x = 0); ``net_value`` the customer's net
    value; ``history_days`` the days from the earliest first purchase to the date.
    """

    x: np.ndarray
    t_x: np.ndarray
    t: np.ndarray
    repeat_mean_value: np.ndarray
    net_value: np.ndarray
    history_days: float

    @property
    def spend_rows(self) -> np.ndarray:
        """The customers the spend model is fitted on: a repeat purchase and a positive value."""
        return (self.x > 0) & (self.repeat_mean_value > 0) & (self.net_value > 0)


@dataclass(frozen=True)
class LifetimeValueFit:
    """Both fits, or why each is missing (a reason is None when its values can be used)."""

    purchases: ClvFit | None
    spend: ClvFit | None
    purchases_reason: str | None
    spend_reason: str | None
    frequency_value_correlation: float


@dataclass(frozen=True)
class FitStatistics:
    """What the fits read: rows of (x, t_x, T) and spend rows (x, m), each with a weight.

    A weight is how many customers a row stands for: 1 for per-customer rows (DuckDB), the
    customers sharing a distinct row when the rows are grouped (Spark). ``spend_x`` and
    ``spend_m`` are the spend rows only (``Histories.spend_rows``); ``history_days`` and
    ``frequency_value_correlation`` (of the spend rows' x and m) as their names say.
    """

    x: np.ndarray
    t_x: np.ndarray
    t: np.ndarray
    weights: np.ndarray
    spend_x: np.ndarray
    spend_m: np.ndarray
    spend_weights: np.ndarray
    history_days: float
    frequency_value_correlation: float

    @property
    def n_customers(self) -> int:
        """Customers with a purchase before the date."""
        return round(float(self.weights.sum()))

    @property
    def n_repeat(self) -> int:
        """Customers with a repeat purchase."""
        return round(float(self.weights[self.x > 0].sum()))

    @property
    def n_spend(self) -> int:
        """Customers the spend model is fitted on."""
        return round(float(self.spend_weights.sum()))


def fit_statistics(histories: Histories) -> FitStatistics:
    """The per-customer rows of the histories, each of weight 1."""
    spend_rows = histories.spend_rows
    spend_x, spend_m = histories.x[spend_rows], histories.repeat_mean_value[spend_rows]
    return FitStatistics(
        x=histories.x,
        t_x=histories.t_x,
        t=histories.t,
        weights=np.ones(len(histories.x)),
        spend_x=spend_x,
        spend_m=spend_m,
        spend_weights=np.ones(len(spend_x)),
        history_days=histories.history_days,
        frequency_value_correlation=frequency_value_correlation(spend_x, spend_m),
    )


def _thin_data_reason(
    statistics: FitStatistics, min_repeat: int, min_history_days: int
) -> str | None:
    """Why the data is too thin for any fit (None when it is not)."""
    if statistics.n_customers == 0:
        return "no customer has a purchase before the date"
    if statistics.history_days < min_history_days:
        return (
            f"the history spans {statistics.history_days:.0f} days, fewer than "
            f"clv_min_history_days ({min_history_days})"
        )
    n_repeat = statistics.n_repeat
    if n_repeat < min_repeat:
        return (
            f"{n_repeat} customers have a repeat purchase, fewer than "
            f"clv_min_repeat_customers ({min_repeat})"
        )
    return None


def _fit_reason(fit: ClvFit, name: str) -> str | None:
    """Why a finished fit cannot be used (None when it can)."""
    if not fit.converged and fit.model == "gamma_gamma" and fit.estimates is not None:
        q, v = fit.estimates[1], fit.estimates[2]
        if q > SPEND_RIDGE_Q:
            return (
                f"the Gamma-Gamma fit did not converge: the likelihood keeps rising as q and v "
                f"grow together (stopped at q = {q:.3g}, v = {v:.3g}): customers' mean "
                "purchase values differ no more than one customer's purchases do, a limit the "
                f"model only approaches ({fit.message})"
            )
    if not fit.converged or fit.estimates is None:
        return f"the {name} fit did not converge: {fit.message}"
    if fit.model == "gamma_gamma" and fit.gamma_gamma.q <= 1:
        return (
            f"the Gamma-Gamma fit gives q = {fit.gamma_gamma.q:.3g} <= 1: the mean spend it "
            "describes has no finite expectation"
        )
    return None


def fit_lifetime_value(
    histories: Histories,
    min_repeat_customers: int,
    min_history_days: int,
    skip_reason: str | None = None,
) -> LifetimeValueFit:
    """Fit BG/NBD on every customer and Gamma-Gamma on the repeat customers with value."""
    return fit_lifetime_value_statistics(
        fit_statistics(histories), min_repeat_customers, min_history_days, skip_reason
    )


def fit_lifetime_value_statistics(
    statistics: FitStatistics,
    min_repeat_customers: int,
    min_history_days: int,
    skip_reason: str | None = None,
) -> LifetimeValueFit:
    """Fit BG/NBD on every customer and Gamma-Gamma on the repeat customers with value.

    The statistics are per customer (``fit_statistics``) or grouped with counts as weights
    (the Spark backend): the fits and the reasons are the same. Nothing is fitted when the
    data is too thin (see ``_thin_data_reason``) or the caller gives a ``skip_reason``; a fit
    that does not converge is kept, with its reason, so the table shows what the optimiser
    reached.
    """
    correlation = statistics.frequency_value_correlation
    reason = skip_reason or _thin_data_reason(statistics, min_repeat_customers, min_history_days)
    if reason is not None:
        return LifetimeValueFit(None, None, reason, reason, correlation)
    purchases = fit_bgnbd(statistics.x, statistics.t_x, statistics.t, weights=statistics.weights)
    purchases_reason = _fit_reason(purchases, "BG/NBD")
    n_spend = statistics.n_spend
    if n_spend < min_repeat_customers:
        spend_reason: str | None = (
            f"{n_spend} customers have a repeat purchase of positive net value, fewer than "
            f"clv_min_repeat_customers ({min_repeat_customers})"
        )
        return LifetimeValueFit(purchases, None, purchases_reason, spend_reason, correlation)
    spend = fit_gamma_gamma(
        statistics.spend_x, statistics.spend_m, weights=statistics.spend_weights
    )
    return LifetimeValueFit(
        purchases, spend, purchases_reason, _fit_reason(spend, "Gamma-Gamma"), correlation
    )


@dataclass(frozen=True)
class CustomerValues:
    """Per-customer values, in the rows' order; all nan when the purchase model is missing."""

    p_alive: np.ndarray
    expected_purchases: np.ndarray
    discounted_purchases: np.ndarray
    expected_order_value: np.ndarray
    predicted_clv: np.ndarray


def _distinct(*columns: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Distinct rows of the columns (sorted) and each input row's index into them.

    Predictions depend on (x, t_x, T) only, and customers share triples (the more customers,
    the more they share), so they are computed once per distinct triple. A lexicographic sort
    rather than ``np.unique(axis=0)``, which is many times slower on millions of rows.
    """
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    starts = np.ones(len(order), dtype=bool)
    if len(order):
        starts[1:] = np.any([c[1:] != c[:-1] for c in ordered], axis=0)
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return tuple(c[starts] for c in ordered), inverse


def expected_order_values(spend: GammaGammaParameters, histories: Histories) -> np.ndarray:
    """Gamma-Gamma's expected value of a customer's future purchases.

    0 for a customer whose net value is 0 (they returned everything): the model describes the
    spend of customers who keep what they buy. A customer without a usable repeat purchase
    gets the population mean, as the model gives for x = 0.
    """
    rows = histories.spend_rows
    x = np.where(rows, histories.x, 0.0)
    m = np.where(rows, histories.repeat_mean_value, 0.0)
    values = gamma_gamma_expected_value(spend, x, m)
    return np.where(histories.net_value > 0, values, 0.0)


@dataclass(frozen=True)
class PurchaseValues:
    """BG/NBD's values of rows of (x, t_x, T)."""

    p_alive: np.ndarray
    expected_purchases: np.ndarray
    discounted_purchases: np.ndarray


def purchase_values(
    purchases: BgNbdParameters,
    x: np.ndarray,
    t_x: np.ndarray,
    t: np.ndarray,
    days_per_unit: float,
    horizon_days: float,
    annual_discount_rate: float,
) -> PurchaseValues:
    """P(alive), expected purchases over the horizon and their discounted sum.

    Row by row: callers pass distinct rows (customers share them) and index the result back.
    """
    p_alive = bgnbd_p_alive(purchases, x, t_x, t)
    expected = bgnbd_expected_purchases(purchases, horizon_days / days_per_unit, x, t_x, t)
    discounted_purchases = discounted_expected_purchases(
        purchases, days_per_unit, horizon_days, annual_discount_rate, x, t_x, t
    )
    return PurchaseValues(p_alive, expected, discounted_purchases)


def customer_values(
    purchases: BgNbdParameters | None,
    spend: GammaGammaParameters | None,
    histories: Histories,
    days_per_unit: float,
    horizon_days: float,
    annual_discount_rate: float,
) -> CustomerValues:
    """P(alive), expected purchases and spend over the horizon, and the discounted CLV."""
    n = len(histories.x)
    missing = np.full(n, np.nan)
    if purchases is None:
        return CustomerValues(missing, missing, missing, missing, missing)
    (x, t_x, t), inverse = _distinct(histories.x, histories.t_x, histories.t)
    values = purchase_values(
        purchases, x, t_x, t, days_per_unit, horizon_days, annual_discount_rate
    )  # fmt: skip
    p_alive, expected = values.p_alive[inverse], values.expected_purchases[inverse]
    discounted = values.discounted_purchases[inverse]
    if spend is None:
        return CustomerValues(p_alive, expected, discounted, missing, missing)
    order_values = expected_order_values(spend, histories)
    return CustomerValues(p_alive, expected, discounted, order_values, order_values * discounted)


def holdout_predictions(
    purchases: BgNbdParameters | None,
    spend: GammaGammaParameters | None,
    histories: Histories,
    holdout_length: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases in the holdout period and, for repeat customers, expected spend.

    Spend is predicted only where the calibration data has a repeat purchase of positive value
    (nan elsewhere): the validation compares it with the holdout's mean purchase value.
    """
    n = len(histories.x)
    purchases_expected = np.full(n, np.nan)
    spend_expected = np.full(n, np.nan)
    if purchases is not None:
        (x, t_x, t), inverse = _distinct(histories.x, histories.t_x, histories.t)
        purchases_expected = bgnbd_expected_purchases(purchases, holdout_length, x, t_x, t)[inverse]
    if spend is not None:
        rows = histories.spend_rows
        spend_expected[rows] = gamma_gamma_expected_value(
            spend, histories.x[rows], histories.repeat_mean_value[rows]
        )
    return purchases_expected, spend_expected
