"""Seeded samples of rows, and label renaming that does not depend on sklearn's label order."""

from __future__ import annotations

import numpy as np


def sample_rows(n: int, size: int, random_state: int) -> np.ndarray:
    """A fixed, seeded sample of row indices (all rows when n <= size), sorted."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, size=size, replace=False))


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Labels renamed 0, 1, ... in order of first appearance."""
    _, first_index, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first_index))[inverse]


def bootstrap_samples(n: int, size: int, runs: int, random_state: int) -> list[np.ndarray]:
    """``runs`` seeded bootstrap samples (with replacement) of min(n, size) rows."""
    rng = np.random.default_rng(random_state + 1)
    return [rng.integers(0, n, size=min(n, size)) for _ in range(runs)]
