"""Customer lifetime value: the BG/NBD purchase model and the Gamma-Gamma spend model.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
customer buys as a Poisson process of rate lambda ~ Gamma(r, rate alpha) and, after each repeat
purchase, drops out for good with probability p ~ Beta(a, b). Per customer: ``x`` repeat
purchases, ``t_x`` the time of the last one since the first purchase (0 when x is 0) and ``T``
the age, the time from the first purchase to the snapshot. Times are in any one unit (days,
weeks); `BgNbdParameters.rescaled` converts the parameters to another unit.

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves"): each repeat
purchase of a customer is worth z ~ Gamma(p, rate nu), nu ~ Gamma(q, rate v) across customers;
the data are ``x`` >= 1 repeat purchases and their mean value ``m`` > 0.

Fits are maximum likelihood over the log-parameters (L-BFGS-B, analytic gradient) on the
distinct rows weighted by how many customers share them, so millions of customers cost only as
many distinct rows. Standard errors come from the inverse of a central-difference Hessian of the
negative log-likelihood in the original parameters. Everything is vectorised: arrays in, arrays
out, no loop over rows.
"""

# T (age) and t (horizon) are different quantities in the papers' notation: keep both names.
# ruff: noqa: N803, N806

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from customer_segmentation.errors import SegmentationError

# Search box of every log-parameter: parameters in [3e-7, 3e6]. The data are rescaled first
# (times by their mean age, values by their mean), so a sensible optimum lies well inside.
LOG_BOUND = 15.0
# A log-parameter this close to LOG_BOUND counts as on the bound: no interior maximum.
BOUND_MARGIN = 1e-3
# Largest |gradient| of the mean log-likelihood (in log-parameters) accepted as an optimum when
# L-BFGS-B stops for another reason (typically a line search that cannot gain at rounding level).
GRADIENT_TOLERANCE = 1e-6
# Relative step of the central differences of the gradient that give the Hessian.
HESSIAN_STEP = 1e-5
# Above this many distinct rows, the starting points are searched on a weighted sample of this
# many customers and only the best one is refined on all rows: the answer is still the
# maximum over all rows, found from a start already close to it.
WARM_START_CUSTOMERS = 20_000
# Within this distance of a == 1 the expected purchases (a 0/0 there) are interpolated.
A_NEAR_ONE = 1e-5
DAYS_PER_YEAR = 365.0
DAYS_PER_DISCOUNT_STEP = 30.0

BGNBD_NAMES = ("r", "alpha", "a", "b")
GAMMA_GAMMA_NAMES = ("p", "q", "v")


class ClvError(SegmentationError, ValueError):
    """Bad input to a CLV model (negative counts, t_x > T, mismatched lengths, ...)."""


@dataclass(frozen=True)
class BgNbdParameters:
    """BG/NBD: lambda ~ Gamma(r, rate alpha) in purchases per time unit, p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def rescaled(self, factor: float) -> BgNbdParameters:
        """The same model with times multiplied by ``factor`` (weeks to days: 7).

        alpha is a time (the rate's scale), so it scales with the unit; r, a and b do not.
        """
        if not (math.isfinite(factor) and factor > 0):
            raise ClvError(f"time rescaling factor must be a positive number, got {factor}")
        return BgNbdParameters(self.r, self.alpha * factor, self.a, self.b)


@dataclass(frozen=True)
class GammaGammaParameters:
    """Gamma-Gamma: purchase value ~ Gamma(p, rate nu), nu ~ Gamma(q, rate v)."""

    p: float
    q: float
    v: float


@dataclass(frozen=True)
class ClvFit:
    """Result of a maximum-likelihood fit; parameters None when it failed.

    ``estimates`` is None only when no finite point was found (or the data cannot identify the
    model at all, e.g. nobody bought twice). When ``converged`` is False but estimates are set,
    they are where the search stopped (often on a bound), not a maximum: ``message`` says why,
    and ``standard_errors`` is None.
    """

    model: str
    parameter_names: tuple[str, ...]
    estimates: tuple[float, ...] | None
    standard_errors: tuple[float | None, ...] | None
    log_likelihood: float | None
    n_customers: int
    n_distinct: int
    converged: bool
    message: str

    @property
    def bg_nbd(self) -> BgNbdParameters:
        """The estimates as BgNbdParameters.

        Raises:
            ClvError: not a BG/NBD fit, or the fit has no estimates.

        """
        return BgNbdParameters(*self._estimates("bg_nbd"))

    @property
    def gamma_gamma(self) -> GammaGammaParameters:
        """The estimates as GammaGammaParameters.

        Raises:
            ClvError: not a Gamma-Gamma fit, or the fit has no estimates.

        """
        return GammaGammaParameters(*self._estimates("gamma_gamma"))

    def _estimates(self, model: str) -> tuple[float, ...]:
        if self.model != model:
            raise ClvError(f"this is a {self.model} fit, not {model}")
        if self.estimates is None:
            raise ClvError(f"the {self.model} fit has no estimates: {self.message}")
        return self.estimates


# --- sums --------------------------------------------------------------------------------------


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) without BLAS: the same bits whatever BLAS's thread count.

    BLAS splits a dot product across its threads, so its last bits depend on their number, and
    models running beside a fit change that number for the whole process
    (``parallel.map_single_threaded``): a fit at the edge of convergence then converged in one
    build and not in the next. numpy's own sum does not depend on threads.
    """
    return float(np.sum(np.multiply(a, b)))


# --- input checks ------------------------------------------------------------------------------


def _arrays(names: Sequence[str], values: Sequence[ArrayLike]) -> list[np.ndarray]:
    """Float arrays of the arguments; scalars broadcast, arrays must share one shape."""
    arrays = [np.asarray(value, dtype=float) for value in values]
    shapes = {array.shape for array in arrays if array.ndim > 0}
    if len(shapes) > 1:
        described = ", ".join(f"{n}{a.shape}" for n, a in zip(names, arrays, strict=True))
        raise ClvError(f"arguments have mismatched lengths: {described}")
    for name, array in zip(names, arrays, strict=True):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise ClvError(f"{name} has {bad} missing or infinite value(s)")
    if shapes:
        return list(np.broadcast_arrays(*arrays))
    return arrays


def _check_counts(x: np.ndarray, minimum: int) -> None:
    """Raise unless every x is a whole number >= minimum."""
    bad = int(np.count_nonzero((x < minimum) | (x != np.floor(x))))
    if bad:
        raise ClvError(f"x must be whole numbers >= {minimum}: {bad} row(s) are not")


def _check_bgnbd_data(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    """Raise unless 0 <= t_x <= T and x is a count."""
    _check_counts(x, 0)
    bad = int(np.count_nonzero((t_x < 0) | (t_x > T)))
    if bad:
        raise ClvError(f"need 0 <= t_x <= T: {bad} row(s) have t_x < 0 or t_x > T")


def _check_bgnbd_parameters(parameters: BgNbdParameters) -> None:
    values = (parameters.r, parameters.alpha, parameters.a, parameters.b)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ClvError(f"BG/NBD parameters must be positive numbers, got {parameters}")


def _check_gamma_gamma_parameters(parameters: GammaGammaParameters) -> None:
    values = (parameters.p, parameters.q, parameters.v)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ClvError(f"Gamma-Gamma parameters must be positive numbers, got {parameters}")


def _check_weights(weights: ArrayLike | None, n: int) -> np.ndarray:
    """Non-negative finite weights, one per row (ones when None)."""
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ClvError(f"weights have shape {w.shape}, the data {n} row(s)")
    bad = int(np.count_nonzero(~np.isfinite(w) | (w < 0)))
    if bad:
        raise ClvError(f"weights must be finite and >= 0: {bad} row(s) are not")
    return w


# --- grouping ----------------------------------------------------------------------------------


def _runs(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The order sorting the rows (first column first) and where each distinct row starts."""
    # lexsort treats its last key as the primary one.
    order = np.lexsort(columns[::-1])
    changed = np.zeros(len(order), dtype=bool)
    changed[:1] = True
    for column in columns:
        ordered = column[order]
        changed[1:] |= ordered[1:] != ordered[:-1]
    return order, np.flatnonzero(changed)


def sufficient_statistics(*columns: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Distinct rows of the columns and how many customers share each (weights).

    The rows come back sorted by the first column, then the second, and so on; the counts are
    int64 and sum to the number of rows.

    Raises:
        ClvError: no columns, or columns of different lengths.

    """
    if not columns:
        raise ClvError("sufficient_statistics needs at least one column")
    arrays = [np.asarray(c, dtype=float).ravel() for c in columns]
    if len({len(a) for a in arrays}) > 1:
        raise ClvError(f"columns have mismatched lengths: {[len(a) for a in arrays]}")
    order, starts = _runs(arrays)
    counts = np.diff(np.append(starts, len(order))).astype(np.int64)
    return tuple(a[order[starts]] for a in arrays), counts


def _grouped(
    columns: Sequence[np.ndarray], weights: np.ndarray
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Distinct rows with positive weight and the summed weight of each."""
    keep = weights > 0
    kept = [c[keep] for c in columns]
    w = weights[keep]
    if len(w) == 0:
        return tuple(kept), w
    order, starts = _runs(kept)
    return tuple(c[order[starts]] for c in kept), np.add.reduceat(w[order], starts)


# --- BG/NBD likelihood -------------------------------------------------------------------------


def _bgnbd_log_terms(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The logs of the two likelihood parts: still alive at T, and dropped out after t_x.

    Both exclude the common factor Gamma(r+x)/Gamma(r) alpha^r B(a, b+x)/B(a, b). The second is
    -inf where x == 0 (nobody drops out before a repeat purchase).
    """
    alive = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    dropped = np.full_like(alive, -np.inf)
    xr = x[repeat]
    dropped[repeat] = math.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + t_x[repeat])
    return alive, dropped


def _bgnbd_ll(theta: Sequence[float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = theta
    alive, dropped = _bgnbd_log_terms(r, alpha, a, b, x, t_x, T)
    return (
        gammaln(r + x)
        - gammaln(r)
        + r * math.log(alpha)
        + betaln(a, b + x)
        - betaln(a, b)
        + np.logaddexp(alive, dropped)
    )


@dataclass(frozen=True)
class _Rows:
    """Distinct rows, their weights, and the weight of each distinct x.

    Terms that depend on x alone (gammaln, digamma of x plus a parameter) are computed once per
    distinct x: a few hundred values, whatever the number of rows.
    """

    x: np.ndarray
    columns: tuple[np.ndarray, ...]
    w: np.ndarray
    x_values: np.ndarray
    x_weights: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, columns: tuple[np.ndarray, ...], w: np.ndarray) -> _Rows:
        """Group the weights by x."""
        x_values, inverse = np.unique(x, return_inverse=True)
        x_weights = np.bincount(inverse, weights=w, minlength=len(x_values))
        return cls(x, columns, w, x_values, x_weights)

    def scaled(self, factors: tuple[float, ...]) -> _Rows:
        """The same rows with each column divided by its factor."""
        columns = tuple(c / f for c, f in zip(self.columns, factors, strict=True))
        return _Rows(self.x, columns, self.w, self.x_values, self.x_weights)


def _bgnbd_total(theta: Sequence[float], rows: _Rows) -> tuple[float, np.ndarray]:
    """sum(w * log L) and its gradient with respect to (r, alpha, a, b)."""
    r, alpha, a, b = theta
    x, (t_x, T), w = rows.x, rows.columns, rows.w
    ux, wx, total = rows.x_values, rows.x_weights, float(rows.w.sum())
    alive, dropped = _bgnbd_log_terms(r, alpha, a, b, x, t_x, T)
    gap = dropped - alive
    value = (
        _dot(wx, gammaln(r + ux) + betaln(a, b + ux))
        + total * (r * math.log(alpha) - gammaln(r) - betaln(a, b))
        + _dot(w, alive + np.logaddexp(0.0, gap))
    )
    # Share of the dropped-out part in the likelihood's sum (0 where x == 0).
    share = expit(gap)
    psi_ab = digamma(a + b)
    psi_abx = digamma(a + b + ux)
    log_age, log_last = np.log(alpha + T), np.log(alpha + t_x)
    d_r = (
        _dot(wx, digamma(r + ux))
        + total * (math.log(alpha) - digamma(r))
        - _dot(w, log_age + share * (log_last - log_age))
    )
    d_alpha = total * r / alpha - _dot(
        w, (r + x) * ((1 - share) / (alpha + T) + share / (alpha + t_x))
    )
    weighted_share = w * share
    d_a = total * psi_ab - _dot(wx, psi_abx) + float(weighted_share.sum()) / a
    # b + x - 1 > 0 wherever share > 0; elsewhere the term is 0.
    repeat = x > 0
    d_b = (
        _dot(wx, digamma(b + ux) - psi_abx)
        + total * (psi_ab - digamma(b))
        - float(np.sum(weighted_share[repeat] / (b + x[repeat] - 1)))
    )
    return value, np.array([d_r, d_alpha, d_a, d_b])


def bgnbd_log_likelihood(
    parameters: BgNbdParameters, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Log-likelihood of each customer's (x, t_x, T) under the BG/NBD model.

    Raises:
        ClvError: bad parameters, negative or fractional x, t_x outside [0, T].

    """
    _check_bgnbd_parameters(parameters)
    x, t_x, T = _arrays(("x", "t_x", "T"), (x, t_x, T))
    _check_bgnbd_data(x, t_x, T)
    p = parameters
    return _bgnbd_ll(
        (p.r, p.alpha, p.a, p.b), np.atleast_1d(x), np.atleast_1d(t_x), np.atleast_1d(T)
    ).reshape(x.shape)


# --- generic maximum likelihood ----------------------------------------------------------------


def _numerical_hessian(
    gradient: Callable[[np.ndarray], np.ndarray], theta: np.ndarray
) -> np.ndarray:
    """Central differences of an analytic gradient with relative steps, symmetrised."""
    n = len(theta)
    hessian = np.empty((n, n))
    for j in range(n):
        step = HESSIAN_STEP * abs(theta[j])
        up, down = theta.copy(), theta.copy()
        up[j] += step
        down[j] -= step
        hessian[:, j] = (gradient(up) - gradient(down)) / (2 * step)
    return (hessian + hessian.T) / 2


def _standard_errors(hessian: np.ndarray) -> tuple[float | None, ...]:
    """sqrt(diag(inv(H))); None where the inverse is missing or has no positive diagonal."""
    n = len(hessian)
    if not np.all(np.isfinite(hessian)):
        return (None,) * n
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return (None,) * n
    diagonal = np.diag(covariance)
    return tuple(float(np.sqrt(d)) if np.isfinite(d) and d > 0 else None for d in diagonal)


@dataclass(frozen=True)
class _Search:
    """Best L-BFGS-B result over the starting points, in log-parameters."""

    log_theta: np.ndarray
    objective: float
    gradient: np.ndarray
    success: bool
    message: str


def _search(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    starts: Sequence[Sequence[float]],
) -> _Search | None:
    """Minimise objective(log_theta) -> (value, gradient) from each start; the best finite."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(starts[0])
    best: _Search | None = None
    for start in starts:
        x0 = np.clip(np.log(np.asarray(start, dtype=float)), -LOG_BOUND + 1, LOG_BOUND - 1)
        with np.errstate(all="ignore"):
            result = minimize(
                objective,
                x0,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10},
            )
            value, gradient = objective(result.x)
        if not (np.isfinite(value) and np.all(np.isfinite(result.x))):
            continue
        if best is None or value < best.objective:
            best = _Search(
                result.x, float(value), gradient, bool(result.success), str(result.message)
            )
    return best


def _weighted_sample(rows: _Rows, size: int, seed: int = 0) -> _Rows:
    """``size`` customers drawn with replacement in proportion to the weights, regrouped."""
    rng = np.random.default_rng(seed)
    draws = rng.choice(len(rows.w), size=size, p=rows.w / rows.w.sum())
    counts = np.bincount(draws, minlength=len(rows.w)).astype(float)
    keep = counts > 0
    return _Rows.of(rows.x[keep], tuple(c[keep] for c in rows.columns), counts[keep])


def _fit(
    model: str,
    names: tuple[str, ...],
    total: Callable[[Sequence[float], _Rows], tuple[float, np.ndarray]],
    rows: _Rows,
    column_scales: tuple[float, ...],
    parameter_scales: tuple[float, ...],
    starts: Sequence[Sequence[float]],
) -> ClvFit:
    """Search on rescaled data, check the optimum and attach standard errors.

    ``total(theta, rows)`` gives sum(w * log L) and its gradient. The search runs on the data
    columns divided by ``column_scales``; its parameters are multiplied by
    ``parameter_scales`` to give those of the data as given.
    """
    weight = float(rows.w.sum())
    n_customers, n_distinct = round(weight), len(rows.w)
    scaled = rows.scaled(column_scales)
    factors = np.array(parameter_scales)

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        value, gradient = total(theta, scaled)
        return -value / weight, -gradient * theta / weight

    def total_log_likelihood(theta: np.ndarray) -> float:
        return float(total(theta, rows)[0])

    def failed(message: str, estimates: np.ndarray | None = None) -> ClvFit:
        values = None if estimates is None else tuple(float(v) for v in estimates)
        ll = None if estimates is None else total_log_likelihood(estimates)
        return ClvFit(model, names, values, None, ll, n_customers, n_distinct, False, message)

    if n_distinct > WARM_START_CUSTOMERS:
        sample = _weighted_sample(rows, WARM_START_CUSTOMERS).scaled(column_scales)
        sample_weight = float(sample.w.sum())

        def sample_objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
            theta = np.exp(log_theta)
            value, gradient = total(theta, sample)
            return -value / sample_weight, -gradient * theta / sample_weight

        warm = _search(sample_objective, starts)
        if warm is not None:
            starts = [tuple(np.exp(warm.log_theta))]
    found = _search(objective, starts)
    if found is None:
        return failed("the log-likelihood is not finite at any point the search reached")
    estimates = np.exp(found.log_theta) * factors
    on_bound = [
        n for n, v in zip(names, found.log_theta, strict=True) if abs(v) >= LOG_BOUND - BOUND_MARGIN
    ]
    if on_bound:
        return failed(
            f"no interior maximum: {', '.join(on_bound)} ran to the search bound "
            f"(log in [-{LOG_BOUND:g}, {LOG_BOUND:g}]); the data cannot identify the model "
            f"({found.message})",
            estimates,
        )
    if not found.success and np.max(np.abs(found.gradient)) > GRADIENT_TOLERANCE:
        return failed(f"the optimizer did not converge: {found.message}", estimates)
    if not np.all(np.isfinite(estimates)):
        return failed("the estimates are not finite")
    # H of the NEGATIVE total log-likelihood in the original parameters.
    hessian = _numerical_hessian(lambda theta: -total(theta, rows)[1], estimates)
    message = found.message
    if not found.success:
        message = f"gradient below {GRADIENT_TOLERANCE:g} where the optimizer stopped ({message})"
    return ClvFit(
        model,
        names,
        tuple(float(v) for v in estimates),
        _standard_errors(hessian),
        total_log_likelihood(estimates),
        n_customers,
        n_distinct,
        True,
        message,
    )


# --- BG/NBD fit --------------------------------------------------------------------------------


def fit_bgnbd(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
) -> ClvFit:
    """Maximum-likelihood BG/NBD fit on customers' (x, t_x, T), optionally weighted.

    Rows are grouped into distinct (x, t_x, T) with summed weights first, so the cost grows
    with the number of distinct rows, not customers. Times are divided by the mean age before
    the search (alpha is scaled back), so the fit does not depend on the time unit.

    Degenerate data do not raise: when nobody has a repeat purchase the model cannot be fitted
    (the likelihood grows without bound as r -> 0) and the fit comes back with
    ``converged=False``, no estimates and a message saying so; when a parameter runs to the
    search bound (e.g. nobody appears to drop out), ``converged=False`` with the stopping point
    as estimates and a message naming the parameter.

    Raises:
        ClvError: mismatched lengths, negative or fractional x, t_x outside [0, T], bad
            weights, or no customer with positive weight.

    """
    x, t_x, T = (np.atleast_1d(a) for a in _arrays(("x", "t_x", "T"), (x, t_x, T)))
    _check_bgnbd_data(x, t_x, T)
    w = _check_weights(weights, len(x))
    (x, t_x, T), w = _grouped((x, t_x, T), w)
    if len(w) == 0:
        raise ClvError("fit_bgnbd got no customers (no rows, or all weights 0)")
    total = float(w.sum())
    if not np.any(x > 0):
        message = "no customer has a repeat purchase (all x == 0): BG/NBD cannot be fitted"
        return ClvFit("bg_nbd", BGNBD_NAMES, None, None, None, round(total), len(w), False, message)
    mean_age = _dot(w, T) / total
    scale = mean_age if mean_age > 0 else 1.0
    # In scaled time the mean age is 1; r / alpha is a purchase rate, started near mean x.
    rate = max(_dot(w, x) / total, 1e-3)
    starts = [(1.0, 1.0, 1.0, 1.0), (0.5, 0.5 / rate, 0.5, 2.0), (2.0, 2.0 / rate, 2.0, 5.0)]
    rows = _Rows.of(x, (t_x, T), w)
    return _fit("bg_nbd", BGNBD_NAMES, _bgnbd_total, rows, (scale, scale), (1, scale, 1, 1), starts)


# --- BG/NBD predictions ------------------------------------------------------------------------


def _log_dropout_odds(
    parameters: BgNbdParameters, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """log(P(dropped out by T) / P(alive at T)) given the history; -inf where x == 0."""
    p = parameters
    alive, dropped = _bgnbd_log_terms(p.r, p.alpha, p.a, p.b, x, t_x, T)
    return dropped - alive


def bgnbd_p_alive(
    parameters: BgNbdParameters, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Probability each customer is still alive at age T given (x, t_x, T); 1 where x == 0.

    Raises:
        ClvError: bad parameters or data (see `bgnbd_log_likelihood`).

    """
    _check_bgnbd_parameters(parameters)
    x, t_x, T = _arrays(("x", "t_x", "T"), (x, t_x, T))
    _check_bgnbd_data(x, t_x, T)
    shape = x.shape
    odds = _log_dropout_odds(parameters, *(np.atleast_1d(a) for a in (x, t_x, T)))
    return expit(-odds).reshape(shape)


def _euler_form(
    r: float, alpha: float, a: float, b: float, t: np.ndarray, x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """C/(a-1) [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; C; z)], C = a+b+x-1, z = t/(alpha+T+t)."""
    c = a + b + x - 1
    z = t / (alpha + T + t)
    with np.errstate(all="ignore"):
        f = hyp2f1(a + b - 1 - r, a - 1, c, z)
        power = (a - 1) * np.log1p(-z)
        # expm1: the bracket is small for short horizons. Where a + b + x < 1 (x = 0 with
        # a + b < 1) the 2F1 can be negative, and the bracket is computed as it stands.
        positive = f > 0
        in_logs = -np.expm1(power + np.log(np.where(positive, f, 1.0)))
        bracket = np.where(positive, in_logs, 1 - np.exp(power) * f)
        return c / (a - 1) * bracket


def _purchases_if_alive(
    parameters: BgNbdParameters, t: np.ndarray, x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Expected purchases in (T, T+t] of a customer alive at T with x repeat purchases so far.

    The paper's (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],
    z = t/(alpha+T+t), rewritten with Euler's transformation 2F1(A, B; C; z) =
    (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) as C/(a-1) [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; C; z)].
    The original 2F1 grows like (1-z)^-(r+x) and overflows (inf * 0) for frequent customers
    over long horizons; this one stays near 1. The formula holds for any a > 0 (both sides are
    analytic in a), not only a > 1; at a == 1 it is 0/0 and is interpolated across.
    """
    p = parameters
    if abs(p.a - 1) < A_NEAR_ONE:
        lo, hi = 1 - A_NEAR_ONE, 1 + A_NEAR_ONE
        below = _euler_form(p.r, p.alpha, lo, p.b, t, x, T)
        above = _euler_form(p.r, p.alpha, hi, p.b, t, x, T)
        value = below + (above - below) * (p.a - lo) / (hi - lo)
    else:
        value = _euler_form(p.r, p.alpha, p.a, p.b, t, x, T)
    # log(f) of f <= 0 is nan and caught here; f > 0 for every admissible input.
    bad = int(np.count_nonzero(~np.isfinite(value)))
    if bad:
        raise ClvError(
            f"scipy.special.hyp2f1 gave no usable value for {bad} row(s) of the expected "
            f"purchases ({parameters}); check the parameters (a + b + x - 1 must not be 0 "
            "or a negative whole number)"
        )
    return value


def bgnbd_expected_purchases(
    parameters: BgNbdParameters, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Expected purchases of each customer in (T, T+t] given (x, t_x, T).

    Valid for any a > 0: the a > 1 the paper states is needed only for its derivation.

    Raises:
        ClvError: bad parameters or data, t < 0, or hyp2f1 not finite.

    """
    _check_bgnbd_parameters(parameters)
    t, x, t_x, T = _arrays(("t", "x", "t_x", "T"), (t, x, t_x, T))
    _check_bgnbd_data(x, t_x, T)
    if np.any(t < 0):
        raise ClvError(f"the horizon t must be >= 0: {int(np.count_nonzero(t < 0))} are not")
    shape = np.broadcast_shapes(t.shape, x.shape)
    t, x, t_x, T = (np.atleast_1d(np.broadcast_to(a, shape)) for a in (t, x, t_x, T))
    alive = expit(-_log_dropout_odds(parameters, x, t_x, T))
    return (_purchases_if_alive(parameters, t, x, T) * alive).reshape(shape)


def bgnbd_unconditional_purchases(parameters: BgNbdParameters, t: ArrayLike) -> np.ndarray:
    """Expected purchases in (0, t] of a new customer (first purchase at 0 not counted).

    Raises:
        ClvError: bad parameters, t < 0, or hyp2f1 not finite.

    """
    _check_bgnbd_parameters(parameters)
    (t,) = _arrays(("t",), (t,))
    if np.any(t < 0):
        raise ClvError(f"the horizon t must be >= 0: {int(np.count_nonzero(t < 0))} are not")
    flat = np.atleast_1d(t)
    zero = np.zeros_like(flat)
    return _purchases_if_alive(parameters, flat, zero, zero).reshape(t.shape)


def discounted_expected_purchases(
    parameters: BgNbdParameters,
    days_per_unit: float,
    horizon_days: float,
    annual_discount_rate: float,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    steps: int | None = None,
) -> np.ndarray:
    """Expected purchases over the horizon, each step's discounted to today.

    The sum over the horizon of the expected purchases in each step, each discounted at
    (1 + rate)^(-step_end_days / 365). The horizon is cut into ``steps`` equal steps
    (ceil(horizon_days / 30), about a month each, when None); x, t_x, T and the parameters are
    in the time unit of ``days_per_unit`` days. With rate 0 this equals
    bgnbd_expected_purchases(horizon_days / days_per_unit).

    Raises:
        ClvError: days_per_unit <= 0, horizon_days < 0, rate <= -1, steps < 1, or bad data.

    """
    if not (math.isfinite(days_per_unit) and days_per_unit > 0):
        raise ClvError(f"days_per_unit must be a positive number, got {days_per_unit}")
    if not (math.isfinite(horizon_days) and horizon_days >= 0):
        raise ClvError(f"horizon_days must be a number >= 0, got {horizon_days}")
    if not (math.isfinite(annual_discount_rate) and annual_discount_rate > -1):
        raise ClvError(f"annual_discount_rate must be > -1, got {annual_discount_rate}")
    if steps is None:
        steps = max(1, math.ceil(horizon_days / DAYS_PER_DISCOUNT_STEP))
    if steps < 1:
        raise ClvError(f"steps must be >= 1, got {steps}")
    ends = horizon_days * np.arange(1, steps + 1) / steps
    factors = (1 + annual_discount_rate) ** (-ends / DAYS_PER_YEAR)
    total = None
    previous = 0.0
    # Cumulative expectations telescope: the purchases of step k are E(end_k) - E(end_k-1).
    for end, factor in zip(ends, factors, strict=True):
        cumulative = bgnbd_expected_purchases(parameters, end / days_per_unit, x, t_x, T)
        step = factor * (cumulative - previous)
        total = step if total is None else total + step
        previous = cumulative
    return total


# --- Gamma-Gamma -------------------------------------------------------------------------------


def _check_gamma_gamma_data(x: np.ndarray, m: np.ndarray) -> None:
    """Raise unless every x is a whole number >= 1 and every m > 0."""
    _check_counts(x, 1)
    bad = int(np.count_nonzero(m <= 0))
    if bad:
        raise ClvError(f"Gamma-Gamma needs mean purchase values m > 0: {bad} row(s) have m <= 0")


def _gamma_gamma_ll(theta: Sequence[float], x: np.ndarray, m: np.ndarray) -> np.ndarray:
    p, q, v = theta
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )


def _gamma_gamma_total(theta: Sequence[float], rows: _Rows) -> tuple[float, np.ndarray]:
    """sum(w * log L) and its gradient with respect to (p, q, v)."""
    p, q, v = theta
    x, (m,), w = rows.x, rows.columns, rows.w
    ux, wx, total = rows.x_values, rows.x_weights, float(rows.w.sum())
    pu = p * ux
    log_m = np.log(m)
    log_sum = np.log(x * m + v)
    value = (
        _dot(wx, gammaln(pu + q) - gammaln(pu) + pu * np.log(ux))
        + total * (q * math.log(v) - gammaln(q))
        + _dot(w, (p * x - 1) * log_m - (p * x + q) * log_sum)
    )
    psi = digamma(pu + q)
    d_p = _dot(wx, ux * (psi - digamma(pu) + np.log(ux))) + _dot(w, x * (log_m - log_sum))
    d_q = _dot(wx, psi) + total * (math.log(v) - digamma(q)) - _dot(w, log_sum)
    d_v = total * q / v - _dot(w, (p * x + q) / (x * m + v))
    return value, np.array([d_p, d_q, d_v])


def gamma_gamma_log_likelihood(
    parameters: GammaGammaParameters, x: ArrayLike, m: ArrayLike
) -> np.ndarray:
    """Log-density of each customer's mean repeat-purchase value m given x >= 1 purchases.

    Raises:
        ClvError: bad parameters, x < 1 or fractional, m <= 0, mismatched lengths.

    """
    _check_gamma_gamma_parameters(parameters)
    x, m = _arrays(("x", "m"), (x, m))
    _check_gamma_gamma_data(x, m)
    p = parameters
    return _gamma_gamma_ll((p.p, p.q, p.v), x, m)


def fit_gamma_gamma(x: ArrayLike, m: ArrayLike, weights: ArrayLike | None = None) -> ClvFit:
    """Maximum-likelihood Gamma-Gamma fit on repeat customers' (x, m), optionally weighted.

    Identical (x, m) pairs are grouped. Values are divided by their mean before the search (v
    is scaled back), so the fit does not depend on the currency unit. A parameter running to the
    search bound gives ``converged=False`` and a message, not an error.

    Raises:
        ClvError: x < 1 or fractional, m <= 0 (naming how many rows), bad weights, or no rows.

    """
    x, m = (np.atleast_1d(a) for a in _arrays(("x", "m"), (x, m)))
    _check_gamma_gamma_data(x, m)
    w = _check_weights(weights, len(x))
    (x, m), w = _grouped((x, m), w)
    if len(w) == 0:
        raise ClvError("fit_gamma_gamma got no customers (no rows, or all weights 0)")
    scale = _dot(w, m) / float(w.sum())
    # Scaled values have mean 1 and the population mean is p v / (q - 1): starts match it.
    starts = [(1.0, 2.0, 1.0), (4.0, 4.0, 0.75), (1.0, 10.0, 9.0)]
    rows = _Rows.of(x, (m,), w)
    return _fit(
        "gamma_gamma", GAMMA_GAMMA_NAMES, _gamma_gamma_total, rows, (scale,), (1, 1, scale), starts
    )


def gamma_gamma_expected_value(
    parameters: GammaGammaParameters, x: ArrayLike, m: ArrayLike
) -> np.ndarray:
    """Expected mean purchase value of each customer given x purchases of mean value m.

    p (v + x m) / (p x + q - 1) for x >= 1; rows with x == 0 get the population mean
    p v / (q - 1) and their m is ignored (it may be 0 or nan).

    Raises:
        ClvError: bad parameters; x negative or fractional; m missing or < 0 where x >= 1;
            q <= 1 with x == 0 rows, or p x + q <= 1 (the mean is infinite).

    """
    _check_gamma_gamma_parameters(parameters)
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    if x.ndim and m.ndim and x.shape != m.shape:
        raise ClvError(f"arguments have mismatched lengths: x{x.shape}, m{m.shape}")
    x, m = np.broadcast_arrays(x, m)
    if not np.all(np.isfinite(x)):
        raise ClvError(f"x has {int(np.count_nonzero(~np.isfinite(x)))} missing value(s)")
    _check_counts(x, 0)
    repeat = x >= 1
    bad = int(np.count_nonzero(repeat & ~(np.isfinite(m) & (m >= 0))))
    if bad:
        raise ClvError(f"m must be a number >= 0 where x >= 1: {bad} row(s) are not")
    p, q, v = parameters.p, parameters.q, parameters.v
    denominator = p * x + q - 1
    infinite = int(np.count_nonzero(denominator <= 0))
    if infinite:
        raise ClvError(
            f"the expected value is infinite for {infinite} row(s): p x + q <= 1 "
            f"({parameters}; x == 0 rows need q > 1)"
        )
    safe_m = np.where(repeat, m, 0.0)
    return p * (v + x * safe_m) / denominator


def frequency_value_correlation(x: ArrayLike, m: ArrayLike) -> float:
    """Pearson correlation of x and m over the rows given; nan with < 3 rows or no spread.

    Gamma-Gamma assumes spend independent of frequency: a clearly non-zero value warns it is not.

    Raises:
        ClvError: mismatched lengths or missing values.

    """
    x, m = (np.atleast_1d(a).ravel() for a in _arrays(("x", "m"), (x, m)))
    if len(x) < 3:
        return math.nan
    dx, dm = x - x.mean(), m - m.mean()
    spread = math.sqrt(_dot(dx, dx) * _dot(dm, dm))
    if spread == 0:
        return math.nan
    return float(np.clip(_dot(dx, dm) / spread, -1.0, 1.0))
