"""Two principal components of the scaled matrix, for the scatter chart.

The projection is fitted once per model and stored with it (segment_models), so a build that
scores with a registered model places customers with that model's axes, fitting nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA


@dataclass(frozen=True)
class Projection:
    """``(x - mean) @ components.T``: two rows of components (zero rows pad a 1-D projection)."""

    mean: np.ndarray
    components: np.ndarray


def fit_projection(matrix: np.ndarray, random_state: int) -> Projection:
    """The first two principal components of the scaled matrix."""
    n_components = min(2, matrix.shape[1], len(matrix))
    pca = PCA(n_components=n_components, svd_solver="full", random_state=random_state)
    pca.fit(matrix)
    components = np.zeros((2, matrix.shape[1]))
    components[:n_components] = pca.components_
    return Projection(pca.mean_.copy(), components)


def project(matrix: np.ndarray, projection: Projection) -> np.ndarray:
    """Coordinates of the rows of ``matrix`` on the projection's two axes."""
    return (matrix - projection.mean) @ projection.components.T


def pca_coordinates(matrix: np.ndarray, random_state: int) -> np.ndarray:
    """First two principal components of the scaled matrix (for the scatter chart)."""
    return project(matrix, fit_projection(matrix, random_state))
