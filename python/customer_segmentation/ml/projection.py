"""Two principal components of the scaled matrix, for the scatter chart."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA


def pca_coordinates(matrix: np.ndarray, random_state: int) -> np.ndarray:
    """First two principal components of the scaled matrix (for the scatter chart)."""
    components = min(2, matrix.shape[1], len(matrix))
    coordinates = PCA(n_components=components, svd_solver="full", random_state=random_state)
    projected = coordinates.fit_transform(matrix)
    if projected.shape[1] < 2:
        projected = np.column_stack([projected, np.zeros((len(matrix), 2 - projected.shape[1]))])
    return projected
