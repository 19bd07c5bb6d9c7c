"""Segment identity across refits, and the training figures drift is measured against.

A refit numbers its clusters afresh; campaigns are keyed to segments. ``match_segments`` pairs
the new clusters with the previous model's segments by minimum total centroid distance
(the Hungarian assignment), so a segment that is still there keeps its id and name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import sklearn
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Match:
    """A new cluster (0-based row of the new centres) paired with a previous segment's row."""

    new_index: int
    previous_index: int
    distance: float


def match_segments(
    previous_centers: np.ndarray, new_centers: np.ndarray, max_distance: float
) -> list[Match]:
    """Pair new clusters with previous segments: least total distance, none farther than the max.

    Both sets of centres are in the same (scaled) space. ``linear_sum_assignment`` gives the
    pairing of least total Euclidean distance over min(k_new, k_previous) pairs; a pair farther
    apart than ``max_distance`` is not the same segment (the previous one is retired and the
    new one is new). Returns the matches sorted by new index.
    """
    if len(previous_centers) == 0 or len(new_centers) == 0:
        return []
    cost = np.linalg.norm(new_centers[:, None, :] - previous_centers[None, :, :], axis=2)
    rows, columns = linear_sum_assignment(cost)
    return [
        Match(int(row), int(column), float(cost[row, column]))
        for row, column in zip(rows, columns, strict=True)
        if cost[row, column] <= max_distance
    ]


@dataclass(frozen=True)
class FeatureBins:
    """A feature's training distribution: bin edges and the share of customers in each bin.

    Bin i holds ``edges[i-1] < x <= edges[i]`` (the first bin everything at or below
    ``edges[0]``, the last everything above ``edges[-1]``), so ``len(shares) == len(edges) + 1``.
    """

    feature: str
    edges: tuple[float, ...]
    shares: tuple[float, ...]


def feature_bins(feature: str, values: np.ndarray, n_bins: int = 10) -> FeatureBins:
    """Decile bins of ``values`` (fewer when values repeat, as counts do) and their shares."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    shares = bin_shares(values, edges)
    return FeatureBins(feature, tuple(float(e) for e in edges), tuple(float(s) for s in shares))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of ``values`` in each bin of ``edges`` (as ``FeatureBins``)."""
    index = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    return np.bincount(index, minlength=len(edges) + 1) / max(len(values), 1)


def fingerprint(ids: np.ndarray, matrix: np.ndarray) -> str:
    """A short hash of the training input (customer ids and feature values, in id order)."""
    digest = hashlib.sha256()
    if ids.dtype.kind in "iu":
        digest.update(ids.astype(np.int64).tobytes())
    else:
        digest.update("\x1f".join(map(str, ids)).encode())
    digest.update(np.ascontiguousarray(matrix, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def library_version() -> str:
    """The scikit-learn version a model is fitted with (stored with it)."""
    return str(sklearn.__version__)
