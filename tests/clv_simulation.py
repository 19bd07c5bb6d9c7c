"""Customers simulated from the definitions of the BG/NBD and Gamma-Gamma models.

Written from the models' stories, event by event, not from their likelihoods or closed forms,
so the tests can check those formulas against it.
"""

# T (age) as in the papers and in customer_segmentation.ml.clv.
# ruff: noqa: N803

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimulatedCustomers:
    """Each customer's history at age T and what happens next."""

    x: np.ndarray  # repeat purchases in (0, T]
    t_x: np.ndarray  # time of the last repeat purchase (0 when x == 0)
    T: np.ndarray  # age at the snapshot
    alive: np.ndarray  # still alive at T
    future: np.ndarray  # purchases in (T, T + future]


def simulate_bgnbd(
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | np.ndarray,
    seed: int,
    future: float = 0.0,
) -> SimulatedCustomers:
    """n customers, each with lambda ~ Gamma(r, rate alpha) and p ~ Beta(a, b).

    After the first purchase at time 0 the customer is alive and buys as a Poisson process of
    rate lambda; after each (repeat) purchase they drop out for good with probability p.
    Purchases are followed up to T + future, one purchase per loop step for every customer
    still alive and inside that window.
    """
    rng = np.random.default_rng(seed)
    ages = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    rate = rng.gamma(r, 1 / alpha, n)
    dropout = rng.beta(a, b, n)
    end = ages + future
    now = np.zeros(n)
    x = np.zeros(n, dtype=np.int64)
    t_x = np.zeros(n)
    later = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)  # alive at T
    active = np.arange(n)  # alive now and before the end of the window
    while len(active):
        now[active] += rng.exponential(1 / rate[active])
        active = active[now[active] <= end[active]]
        before = active[now[active] <= ages[active]]
        x[before] += 1
        t_x[before] = now[before]
        after = active[now[active] > ages[active]]
        later[after] += 1
        drops = rng.random(len(active)) < dropout[active]
        alive[active[drops & (now[active] <= ages[active])]] = False
        active = active[~drops]
    return SimulatedCustomers(x, t_x, ages, alive, later)


def simulate_gamma_gamma(x: np.ndarray, p: float, q: float, v: float, seed: int) -> np.ndarray:
    """Mean value of each customer's x >= 1 repeat purchases.

    Each customer has nu ~ Gamma(q, rate v); each purchase is worth z ~ Gamma(p, rate nu).
    """
    x = np.asarray(x, dtype=np.int64)
    if np.any(x < 1):
        raise ValueError("simulate_gamma_gamma needs x >= 1")
    rng = np.random.default_rng(seed)
    nu = rng.gamma(q, 1 / v, len(x))
    values = rng.gamma(p, 1 / np.repeat(nu, x))
    starts = np.concatenate([[0], np.cumsum(x)[:-1]])
    return np.add.reduceat(values, starts) / x
