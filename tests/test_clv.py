"""BG/NBD and Gamma-Gamma: likelihoods against direct integration, fits against simulation."""

# T (age) and t (horizon) as in the papers and in customer_segmentation.ml.clv.
# ruff: noqa: N803, N806

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from scipy import integrate
from scipy.special import gammaln, hyp2f1
from tests.clv_simulation import SimulatedCustomers, simulate_bgnbd, simulate_gamma_gamma

from customer_segmentation.errors import SegmentationError
from customer_segmentation.ml import clv
from customer_segmentation.ml.clv import (
    BgNbdParameters,
    ClvError,
    GammaGammaParameters,
    bgnbd_expected_purchases,
    bgnbd_log_likelihood,
    bgnbd_p_alive,
    bgnbd_unconditional_purchases,
    discounted_expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    frequency_value_correlation,
    gamma_gamma_expected_value,
    gamma_gamma_log_likelihood,
    sufficient_statistics,
)

# Weekly parameters in the range the paper's CDNOW data give.
TRUE = BgNbdParameters(r=0.25, alpha=4.0, a=0.8, b=2.5)
TRUE_GG = GammaGammaParameters(p=6.0, q=4.0, v=15.0)
# A second set with a > 1 and r > 1, for the formulas' other branches.
OTHER = BgNbdParameters(r=1.7, alpha=9.0, a=2.4, b=3.1)


def uniform_ages(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(26.0, 78.0, n)


@cache
def weekly_customers() -> SimulatedCustomers:
    return simulate_bgnbd(20_000, TRUE.r, TRUE.alpha, TRUE.a, TRUE.b, uniform_ages(20_000, 1), 2)


@cache
def weekly_fit() -> clv.ClvFit:
    c = weekly_customers()
    return fit_bgnbd(c.x, c.t_x, c.T)


@cache
def repeat_values() -> tuple[np.ndarray, np.ndarray]:
    c = weekly_customers()
    x = c.x[c.x > 0]
    return x, simulate_gamma_gamma(x, TRUE_GG.p, TRUE_GG.q, TRUE_GG.v, seed=3)


# --- 1. recovery -------------------------------------------------------------------------------


def assert_recovers(fit: clv.ClvFit, truth: tuple[float, ...]) -> None:
    assert fit.converged, fit.message
    assert fit.estimates is not None and fit.standard_errors is not None
    for name, estimate, se, true in zip(
        fit.parameter_names, fit.estimates, fit.standard_errors, truth, strict=True
    ):
        assert se is not None and 0 < se < abs(true), name
        assert abs(estimate - true) < 3 * se, f"{name}: {estimate} vs {true} (se {se})"


def test_bgnbd_fit_recovers_the_simulated_parameters() -> None:
    fit = weekly_fit()
    assert fit.model == "bg_nbd" and fit.parameter_names == ("r", "alpha", "a", "b")
    assert fit.n_customers == 20_000
    assert_recovers(fit, (TRUE.r, TRUE.alpha, TRUE.a, TRUE.b))
    assert fit.bg_nbd == BgNbdParameters(*fit.estimates)
    c = weekly_customers()
    assert fit.log_likelihood == pytest.approx(
        bgnbd_log_likelihood(fit.bg_nbd, c.x, c.t_x, c.T).sum()
    )
    # The maximum: the true parameters fit these data less well.
    assert fit.log_likelihood > bgnbd_log_likelihood(TRUE, c.x, c.t_x, c.T).sum()


def test_gamma_gamma_fit_recovers_the_simulated_parameters() -> None:
    x, m = repeat_values()
    fit = fit_gamma_gamma(x, m)
    assert fit.model == "gamma_gamma" and fit.parameter_names == ("p", "q", "v")
    assert fit.n_customers == len(x)
    assert_recovers(fit, (TRUE_GG.p, TRUE_GG.q, TRUE_GG.v))
    assert fit.log_likelihood == pytest.approx(
        gamma_gamma_log_likelihood(fit.gamma_gamma, x, m).sum()
    )
    # Values simulated independently of frequency: no correlation to speak of.
    assert abs(frequency_value_correlation(x, m)) < 0.05


def test_bgnbd_fit_recovers_parameters_with_a_above_one() -> None:
    p = OTHER
    c = simulate_bgnbd(10_000, p.r, p.alpha, p.a, p.b, uniform_ages(10_000, 4), 5)
    assert_recovers(fit_bgnbd(c.x, c.t_x, c.T), (p.r, p.alpha, p.a, p.b))


def test_standard_errors_are_the_inverse_hessian_of_the_total_log_likelihood() -> None:
    # Doubling every customer's weight halves the variances.
    c = weekly_customers()
    fit = weekly_fit()
    doubled = fit_bgnbd(c.x, c.t_x, c.T, weights=np.full(len(c.x), 2.0))
    assert doubled.n_customers == 40_000
    np.testing.assert_allclose(doubled.estimates, fit.estimates, rtol=1e-5)
    np.testing.assert_allclose(
        np.array(doubled.standard_errors) * math.sqrt(2), fit.standard_errors, rtol=1e-3
    )


# --- 2. likelihoods against direct integration -------------------------------------------------


def log_gamma_density(lam: float, shape: float, rate: float) -> float:
    return shape * math.log(rate) + (shape - 1) * math.log(lam) - rate * lam - math.lgamma(shape)


def log_beta_density(p: float, a: float, b: float) -> float:
    return (
        (a - 1) * math.log(p)
        + (b - 1) * math.log1p(-p)
        + math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
    )


def individual_likelihood(lam: float, p: float, x: int, t_x: float, T: float) -> float:
    """Alive throughout (0, T] after x purchases, or dropped out right after the one at t_x."""
    alive = (1 - p) ** x * lam**x * math.exp(-lam * T)
    dropped = p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x) if x > 0 else 0.0
    return alive + dropped


def integrate_over_customers(parameters: BgNbdParameters, integrand) -> float:
    """Integral of integrand(lambda, p) times the gamma and beta densities."""

    def weighted(p: float, lam: float) -> float:
        density = log_gamma_density(lam, parameters.r, parameters.alpha) + log_beta_density(
            p, parameters.a, parameters.b
        )
        return integrand(lam, p) * math.exp(density)

    # Split lambda at its bulk so quad sees the tail separately; epsabs=0: tiny likelihoods.
    split = 10 * (parameters.r + 5) / parameters.alpha
    total = 0.0
    for low, high in ((0.0, split), (split, math.inf)):
        value, _ = integrate.dblquad(weighted, low, high, 0.0, 1.0, epsabs=0.0, epsrel=1e-10)
        total += value
    return total


CUSTOMERS = [(0, 0.0, 30.0), (1, 12.5, 40.0), (3, 20.0, 26.0), (7, 60.0, 70.0)]


@pytest.mark.parametrize("parameters", [TRUE, OTHER], ids=["a<1", "a>1"])
def test_bgnbd_likelihood_equals_direct_integration(parameters: BgNbdParameters) -> None:
    x, t_x, T = (np.array(column, dtype=float) for column in zip(*CUSTOMERS, strict=True))
    formula = np.exp(bgnbd_log_likelihood(parameters, x, t_x, T))
    for (xi, ti, Ti), value in zip(CUSTOMERS, formula, strict=True):
        direct = integrate_over_customers(
            parameters,
            lambda lam, p, xi=xi, ti=ti, Ti=Ti: individual_likelihood(lam, p, xi, ti, Ti),
        )
        assert value == pytest.approx(direct, rel=1e-6), (xi, ti, Ti)


@pytest.mark.parametrize("parameters", [TRUE, OTHER], ids=["a<1", "a>1"])
def test_predictions_equal_direct_integration(parameters: BgNbdParameters) -> None:
    """P(alive) and E[purchases in (T, T+t]] as posterior means over (lambda, p)."""
    horizon = 20.0
    for xi, ti, Ti in CUSTOMERS[1:]:
        likelihood = integrate_over_customers(
            parameters,
            lambda lam, p, xi=xi, ti=ti, Ti=Ti: individual_likelihood(lam, p, xi, ti, Ti),
        )

        def alive(lam: float, p: float, xi=xi, Ti=Ti) -> float:
            return (1 - p) ** xi * lam**xi * math.exp(-lam * Ti)

        # Alive at T, a customer buys (1 - exp(-lambda p t)) / p times in expectation.
        alive_mass = integrate_over_customers(parameters, alive)
        purchases = integrate_over_customers(
            parameters,
            lambda lam, p, alive=alive: alive(lam, p) * -math.expm1(-lam * p * horizon) / p,
        )
        assert bgnbd_p_alive(parameters, xi, ti, Ti) == pytest.approx(
            alive_mass / likelihood, rel=1e-6
        )
        assert bgnbd_expected_purchases(parameters, horizon, xi, ti, Ti) == pytest.approx(
            purchases / likelihood, rel=1e-6
        )


def test_gamma_gamma_likelihood_equals_direct_integration() -> None:
    p, q, v = TRUE_GG.p, TRUE_GG.q, TRUE_GG.v
    for x, m in [(1, 3.2), (2, 0.7), (5, 12.0), (40, 2.5)]:

        def joint(nu: float, x=x, m=m) -> float:
            # The mean of x Gamma(p, rate nu) values is Gamma(p x, rate x nu).
            shape, rate = p * x, x * nu
            log_mean = shape * math.log(rate) + (shape - 1) * math.log(m) - rate * m
            log_nu = q * math.log(v) + (q - 1) * math.log(nu) - v * nu - math.lgamma(q)
            return math.exp(log_mean - math.lgamma(shape) + log_nu)

        split = 20 * q / v
        direct = sum(
            integrate.quad(joint, lo, hi, epsabs=0.0, epsrel=1e-11, limit=200)[0]
            for lo, hi in ((0.0, split), (split, math.inf))
        )
        formula = math.exp(gamma_gamma_log_likelihood(TRUE_GG, x, m))
        assert formula == pytest.approx(direct, rel=1e-6), (x, m)


def test_gamma_gamma_expected_value_is_the_posterior_mean() -> None:
    p, q, v = TRUE_GG.p, TRUE_GG.q, TRUE_GG.v
    x, m = 3, 4.0
    # Posterior of nu is Gamma(p x + q, rate v + x m); a purchase is worth p / nu on average.
    shape, rate = p * x + q, v + x * m
    direct, _ = integrate.quad(
        lambda nu: (
            p
            / nu
            * math.exp(
                shape * math.log(rate) + (shape - 1) * math.log(nu) - rate * nu - math.lgamma(shape)
            )
        ),
        0.0,
        math.inf,
        epsabs=0.0,
        epsrel=1e-11,
    )
    assert gamma_gamma_expected_value(TRUE_GG, x, m) == pytest.approx(direct, rel=1e-8)
    np.testing.assert_allclose(
        gamma_gamma_expected_value(TRUE_GG, [0, 3], [np.nan, 4.0]), [p * v / (q - 1), direct]
    )


def assert_gradient_matches(total, theta: np.ndarray, rows) -> None:
    gradient = total(theta, rows)[1]
    numeric = []
    for step in np.eye(len(theta)) * 1e-6 * theta:
        up, down = total(theta + step, rows)[0], total(theta - step, rows)[0]
        numeric.append((up - down) / (2 * step.sum()))
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5)


def test_fit_totals_and_gradients_match_the_per_customer_formulas() -> None:
    c = weekly_customers()
    x, t_x, T, w = c.x[:2_000].astype(float), c.t_x[:2_000], c.T[:2_000], np.full(2_000, 1.5)
    rows = clv._Rows.of(x, (t_x, T), w)
    theta = np.array([0.3, 5.0, 0.9, 2.0])
    per_row = bgnbd_log_likelihood(BgNbdParameters(*theta), x, t_x, T)
    assert clv._bgnbd_total(theta, rows)[0] == pytest.approx(1.5 * per_row.sum(), rel=1e-12)
    assert_gradient_matches(clv._bgnbd_total, theta, rows)

    xs, m = repeat_values()
    xs, m = xs[:2_000].astype(float), m[:2_000]
    rows = clv._Rows.of(xs, (m,), np.full(len(xs), 1.5))
    phi = np.array([5.0, 3.0, 12.0])
    per_row = gamma_gamma_log_likelihood(GammaGammaParameters(*phi), xs, m)
    assert clv._gamma_gamma_total(phi, rows)[0] == pytest.approx(1.5 * per_row.sum(), rel=1e-12)
    assert_gradient_matches(clv._gamma_gamma_total, phi, rows)


# --- 3. predictions against Monte Carlo --------------------------------------------------------

BUCKETS = {"0": (0, 0), "1": (1, 1), "2": (2, 2), "3-5": (3, 5), "6+": (6, 10**9)}


@pytest.mark.parametrize("parameters", [TRUE, OTHER], ids=["a<1", "a>1"])
def test_p_alive_and_expected_purchases_match_monte_carlo(parameters: BgNbdParameters) -> None:
    n, horizon = 200_000, 26.0
    p = parameters
    c = simulate_bgnbd(n, p.r, p.alpha, p.a, p.b, uniform_ages(n, 6), 7, future=horizon)
    alive = bgnbd_p_alive(p, c.x, c.t_x, c.T)
    purchases = bgnbd_expected_purchases(p, horizon, c.x, c.t_x, c.T)
    for name, (low, high) in BUCKETS.items():
        rows = (c.x >= low) & (c.x <= high)
        assert rows.sum() > 1_000, name
        # Each prediction is the conditional mean of its customer's outcome: the differences
        # average to 0, with the standard error of their mean.
        for predicted, outcome in ((alive, c.alive), (purchases, c.future)):
            gap = outcome[rows] - predicted[rows]
            se = gap.std() / math.sqrt(rows.sum())
            assert abs(gap.mean()) <= 4 * se + 1e-12, (name, gap.mean(), se)
    assert np.all(alive[c.x == 0] == 1.0)


@pytest.mark.parametrize("parameters", [TRUE, OTHER], ids=["a<1", "a>1"])
def test_unconditional_purchases_match_simulated_new_customers(parameters: BgNbdParameters) -> None:
    p = parameters
    n = 200_000
    for t in (4.0, 52.0, 260.0):
        c = simulate_bgnbd(n, p.r, p.alpha, p.a, p.b, 0.0, 8, future=t)
        se = c.future.std() / math.sqrt(n)
        assert abs(c.future.mean() - bgnbd_unconditional_purchases(p, t)) < 4 * se, t
    # A new customer is a customer of age 0 with no history.
    np.testing.assert_allclose(
        bgnbd_unconditional_purchases(p, [1.0, 30.0]),
        bgnbd_expected_purchases(p, [1.0, 30.0], 0, 0, 0),
        rtol=1e-12,
    )


def test_expected_purchases_agree_with_the_papers_form_and_stay_finite() -> None:
    """The Euler-transformed 2F1 the module uses equals the paper's where that is finite."""
    p = OTHER
    x, t_x, T = np.array([0.0, 2, 10, 40]), np.array([0.0, 5, 30, 50]), np.full(4, 52.0)
    t = 30.0
    z = t / (p.alpha + T + t)
    bracket = 1 - ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x) * hyp2f1(
        p.r + x, p.b + x, p.a + p.b + x - 1, z
    )
    paper = (p.a + p.b + x - 1) / (p.a - 1) * bracket * bgnbd_p_alive(p, x, t_x, T)
    np.testing.assert_allclose(bgnbd_expected_purchases(p, t, x, t_x, T), paper, rtol=1e-10)
    # Frequent customers over long horizons, where the paper's 2F1 overflows to inf * 0.
    days = TRUE.rescaled(7)
    values = bgnbd_expected_purchases(days, 36_500.0, [300, 2000], [360, 360], [364, 364])
    assert np.all(np.isfinite(values)) and np.all(values > 0)


def test_expected_purchases_are_continuous_across_a_equal_one() -> None:
    args = (26.0, np.array([0, 1, 4]), np.array([0, 10, 30]), np.array([40, 40, 40]))
    near = [
        bgnbd_expected_purchases(BgNbdParameters(0.5, 6.0, a, 2.0), *args)
        for a in (1 - 1e-3, 1 - 1e-6, 1.0, 1 + 1e-6, 1 + 1e-3)
    ]
    # Smooth through a == 1 (interpolated there, direct 0/0-free formula farther out): the
    # midpoint is the mean of its neighbours and both differences give the same slope.
    np.testing.assert_allclose(near[2], (near[1] + near[3]) / 2, rtol=1e-10)
    np.testing.assert_allclose((near[3] - near[1]) / 2e-6, (near[4] - near[0]) / 2e-3, rtol=1e-3)


# --- 4. time units -----------------------------------------------------------------------------


def test_days_and_weeks_give_the_same_model() -> None:
    c = weekly_customers()
    weeks = weekly_fit()
    days = fit_bgnbd(c.x, c.t_x * 7, c.T * 7)
    assert days.converged, days.message
    w, d = weeks.bg_nbd, days.bg_nbd
    assert d.alpha == pytest.approx(7 * w.alpha, rel=1e-4)
    for name in ("r", "a", "b"):
        assert getattr(d, name) == pytest.approx(getattr(w, name), rel=1e-4), name
    # The log-likelihood is a density in time: it shifts by log(7) per repeat purchase.
    assert days.log_likelihood == pytest.approx(weeks.log_likelihood - c.x.sum() * math.log(7))
    np.testing.assert_allclose(w.rescaled(7).alpha, 7 * w.alpha)

    rows = slice(0, 2_000)
    x, t_x, T = c.x[rows], c.t_x[rows], c.T[rows]
    np.testing.assert_allclose(
        bgnbd_p_alive(d, x, t_x * 7, T * 7), bgnbd_p_alive(w, x, t_x, T), rtol=1e-4
    )
    np.testing.assert_allclose(
        bgnbd_expected_purchases(d, 182.0, x, t_x * 7, T * 7),
        bgnbd_expected_purchases(w, 26.0, x, t_x, T),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        discounted_expected_purchases(d, 1.0, 365.0, 0.1, x, t_x * 7, T * 7),
        discounted_expected_purchases(w, 7.0, 365.0, 0.1, x, t_x, T),
        rtol=1e-4,
    )
    # The exact conversion changes no prediction beyond rounding.
    np.testing.assert_allclose(
        bgnbd_p_alive(w.rescaled(7), x, t_x * 7, T * 7), bgnbd_p_alive(w, x, t_x, T), rtol=1e-12
    )


# --- 5. sufficient statistics ------------------------------------------------------------------


def test_sufficient_statistics_group_identical_rows() -> None:
    (x, t), counts = sufficient_statistics(np.array([2, 0, 2, 2, 0]), np.array([5, 0, 5, 6, 0]))
    np.testing.assert_array_equal(x, [0, 2, 2])
    np.testing.assert_array_equal(t, [0, 5, 6])
    np.testing.assert_array_equal(counts, [2, 2, 1])
    with pytest.raises(ClvError, match="mismatched"):
        sufficient_statistics(np.arange(3), np.arange(4))


def test_fit_on_raw_rows_equals_fit_on_grouped_weights() -> None:
    rng = np.random.default_rng(9)
    # Whole weeks, so customers share histories.
    c = simulate_bgnbd(30_000, TRUE.r, TRUE.alpha, TRUE.a, TRUE.b, rng.integers(26, 79, 30_000), 10)
    x, t_x, T = c.x, np.ceil(c.t_x), c.T
    raw = fit_bgnbd(x, t_x, T)
    (gx, gt, gT), counts = sufficient_statistics(x, t_x, T)
    grouped = fit_bgnbd(gx, gt, gT, weights=counts)
    assert raw.converged and grouped.converged
    assert raw.n_customers == grouped.n_customers == 30_000
    assert raw.n_distinct == grouped.n_distinct == len(counts) < 30_000
    np.testing.assert_allclose(grouped.estimates, raw.estimates, rtol=1e-9)
    np.testing.assert_allclose(grouped.standard_errors, raw.standard_errors, rtol=1e-6)
    assert grouped.log_likelihood == pytest.approx(raw.log_likelihood, rel=1e-12)


# --- 6. edge cases -----------------------------------------------------------------------------


def test_gamma_gamma_rejects_impossible_rows() -> None:
    with pytest.raises(ClvError, match="2 row"):
        fit_gamma_gamma([1, 2, 3], [0.0, -1.0, 5.0])
    with pytest.raises(ClvError, match="1 row"):
        fit_gamma_gamma([0, 2, 3], [1.0, 1.0, 5.0])
    with pytest.raises(ClvError, match="mismatched"):
        fit_gamma_gamma([1, 2, 3], [1.0, 2.0])
    with pytest.raises(ClvError):
        gamma_gamma_log_likelihood(TRUE_GG, [1.5], [2.0])
    with pytest.raises(ClvError, match="infinite"):
        gamma_gamma_expected_value(GammaGammaParameters(2.0, 0.8, 3.0), [0, 2], [0.0, 1.0])
    assert issubclass(ClvError, SegmentationError) and issubclass(ClvError, ValueError)


def test_bgnbd_rejects_impossible_rows() -> None:
    with pytest.raises(ClvError, match="t_x > T"):
        bgnbd_p_alive(TRUE, [1, 2], [5.0, 9.0], [6.0, 8.0])
    with pytest.raises(ClvError, match="whole numbers"):
        fit_bgnbd([-1, 2], [0.0, 3.0], [4.0, 4.0])
    with pytest.raises(ClvError, match="mismatched"):
        fit_bgnbd([1, 2, 3], [1.0, 2.0], [5.0, 5.0, 5.0])
    with pytest.raises(ClvError, match="missing"):
        bgnbd_log_likelihood(TRUE, [1.0], [np.nan], [3.0])
    with pytest.raises(ClvError, match="no customers"):
        fit_bgnbd([1, 2], [1.0, 2.0], [3.0, 3.0], weights=[0.0, 0.0])
    with pytest.raises(ClvError, match="positive"):
        bgnbd_p_alive(BgNbdParameters(0.2, -1.0, 1.0, 1.0), 1, 1.0, 2.0)
    with pytest.raises(ClvError, match="t must be"):
        bgnbd_expected_purchases(TRUE, -1.0, 1, 1.0, 2.0)


def test_fits_on_degenerate_data_report_instead_of_crashing() -> None:
    nobody = fit_bgnbd(np.zeros(100), np.zeros(100), np.full(100, 30.0))
    assert not nobody.converged and nobody.estimates is None
    assert "no customer has a repeat purchase" in nobody.message
    with pytest.raises(ClvError, match="no estimates"):
        _ = nobody.bg_nbd
    # Everyone still buying at the snapshot: nobody seen to drop out, so no interior maximum.
    x = np.tile([1, 2, 3, 4], 50)
    loyal = fit_bgnbd(x, np.full(200, 20.0), np.full(200, 20.0))
    assert not loyal.converged and "bound" in loyal.message
    assert loyal.standard_errors is None
    # Every customer spends exactly the same: a point mass the model only approaches.
    flat = fit_gamma_gamma(np.tile([1, 2, 3], 30), np.full(90, 10.0))
    assert not flat.converged and "bound" in flat.message
    with pytest.raises(ClvError, match="not gamma_gamma"):
        _ = weekly_fit().gamma_gamma


def test_p_alive_is_a_probability_and_one_without_repeat_purchases() -> None:
    c = weekly_customers()
    alive = bgnbd_p_alive(weekly_fit().bg_nbd, c.x, c.t_x, c.T)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(alive[c.x == 0] == 1.0)
    # Huge x with a long silence: the odds overflow in linear space, not in log space.
    assert bgnbd_p_alive(TRUE, 5000, 1.0, 1000.0) == 0.0
    assert bgnbd_p_alive(TRUE, 5000, 1000.0, 1000.0) > 0.5
    assert np.shape(bgnbd_p_alive(TRUE, 1, 1.0, 2.0)) == ()


def test_discounting() -> None:
    c = weekly_customers()
    rows = slice(0, 1_000)
    x, t_x, T = c.x[rows], c.t_x[rows], c.T[rows]
    w = weekly_fit().bg_nbd
    plain = bgnbd_expected_purchases(w, 365 / 7, x, t_x, T)
    flat = discounted_expected_purchases(w, 7.0, 365.0, 0.0, x, t_x, T)
    np.testing.assert_allclose(flat, plain, rtol=1e-12)
    cheaper = discounted_expected_purchases(w, 7.0, 365.0, 0.1, x, t_x, T)
    cheapest = discounted_expected_purchases(w, 7.0, 365.0, 0.3, x, t_x, T)
    assert np.all(cheaper < plain) and np.all(cheapest < cheaper)
    # Every purchase is discounted at least as much as one at the horizon's end.
    assert np.all(cheaper >= plain / 1.1 - 1e-12)
    one_step = discounted_expected_purchases(w, 7.0, 365.0, 0.1, x, t_x, T, steps=1)
    np.testing.assert_allclose(one_step, plain / 1.1, rtol=1e-12)
    assert np.all(discounted_expected_purchases(w, 7.0, 0.0, 0.1, x, t_x, T) == 0)


def test_frequency_value_correlation() -> None:
    assert math.isnan(frequency_value_correlation([1, 2], [3.0, 4.0]))
    assert math.isnan(frequency_value_correlation([2, 2, 2], [3.0, 4.0, 5.0]))
    assert frequency_value_correlation([1, 2, 3], [2.0, 4.0, 6.0]) == pytest.approx(1.0)
    x = np.arange(1, 50)
    m = 100.0 / x
    assert frequency_value_correlation(x, m) == pytest.approx(np.corrcoef(x, m)[0, 1])


def test_log_likelihood_matches_the_formula_with_huge_counts() -> None:
    # logaddexp keeps the two parts finite where (alpha + T)^-(r + x) underflows.
    p = TRUE
    x, t_x, T = 400.0, 300.0, 365.0
    value = bgnbd_log_likelihood(p, x, t_x, T)
    expected = (
        gammaln(p.r + x)
        - gammaln(p.r)
        + p.r * math.log(p.alpha)
        + clv.betaln(p.a, p.b + x)
        - clv.betaln(p.a, p.b)
        + np.logaddexp(
            -(p.r + x) * math.log(p.alpha + T),
            math.log(p.a / (p.b + x - 1)) - (p.r + x) * math.log(p.alpha + t_x),
        )
    )
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-12)


# --- 7. many customers -------------------------------------------------------------------------


def test_two_million_rows_cost_as_many_distinct_rows() -> None:
    c = simulate_bgnbd(400, TRUE.r, TRUE.alpha, TRUE.a, TRUE.b, uniform_ages(400, 11), 12)
    (x, t_x, T), _ = sufficient_statistics(c.x, c.t_x, c.T)
    repeats = (
        np.random.default_rng(13).multinomial(2_000_000 - len(x), np.full(len(x), 1 / len(x))) + 1
    )
    fit = fit_bgnbd(np.repeat(x, repeats), np.repeat(t_x, repeats), np.repeat(T, repeats))
    assert fit.converged, fit.message
    assert fit.n_customers == 2_000_000
    assert fit.n_distinct == len(x) == 400
    weighted = fit_bgnbd(x, t_x, T, weights=repeats)
    np.testing.assert_allclose(fit.estimates, weighted.estimates, rtol=1e-9)


def test_warm_start_on_a_sample_reaches_the_same_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    ages = rng.integers(7, 730, 40_000).astype(float)
    simulated = simulate_bgnbd(40_000, 0.6, 50.0, 0.5, 2.5, ages, 11)
    t_x = np.minimum(np.floor(simulated.t_x), ages - 1) * (simulated.x > 0)
    data = (simulated.x.astype(float), t_x, ages)
    warm = fit_bgnbd(*data)
    assert warm.n_distinct > clv.WARM_START_CUSTOMERS  # the sample was used
    monkeypatch.setattr(clv, "WARM_START_CUSTOMERS", 10**9)
    cold = fit_bgnbd(*data)
    assert warm.converged and cold.converged
    np.testing.assert_allclose(warm.estimates, cold.estimates, rtol=1e-5)
    assert warm.log_likelihood == pytest.approx(cold.log_likelihood, abs=1e-6)


# a + b < 1: for x = 0 the 2F1's third argument a + b - 1 is negative and its value can be too
# (the parameters the synthetic benchmark data fit to).
LOW_A_AND_B = BgNbdParameters(r=1.1, alpha=10.0, a=0.3, b=0.4)


def test_expected_purchases_when_a_plus_b_is_below_one() -> None:
    horizon = 52.0
    for xi, ti, Ti in [(0, 0.0, 1.0), (0, 0.0, 30.0), (1, 12.5, 40.0), (3, 20.0, 26.0)]:
        likelihood = integrate_over_customers(
            LOW_A_AND_B,
            lambda lam, p, xi=xi, ti=ti, Ti=Ti: individual_likelihood(lam, p, xi, ti, Ti),
        )

        def alive(lam: float, p: float, xi=xi, Ti=Ti) -> float:
            return (1 - p) ** xi * lam**xi * math.exp(-lam * Ti)

        purchases = integrate_over_customers(
            LOW_A_AND_B,
            lambda lam, p, alive=alive: alive(lam, p) * -math.expm1(-lam * p * horizon) / p,
        )
        expected = bgnbd_expected_purchases(LOW_A_AND_B, horizon, xi, ti, Ti)
        assert np.isfinite(expected)
        assert expected == pytest.approx(purchases / likelihood, rel=1e-6), (xi, ti, Ti)
