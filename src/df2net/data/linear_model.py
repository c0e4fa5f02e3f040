"""What every linear face model shares: ``mean + shape_basis @ s + expression_basis @ e``.

The Surrey model (:mod:`df2net.data.sfm`) and the ICT model (:mod:`df2net.data.ict`) are
dataclasses holding these arrays; this base gives them one implementation of the shape and of
the landmark lookup.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LinearFaceModel"]


class LinearFaceModel:
    """Methods over ``mean`` ``(N, 3)``, ``shape_basis`` ``(3N, K)``, ``expression_basis`` ``(3N, E)``
    and ``landmark_vertices`` (1-based iBUG landmark -> vertex), which the subclass holds."""

    mean: np.ndarray
    shape_basis: np.ndarray
    expression_basis: np.ndarray
    landmark_vertices: dict[int, int]

    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_shape(self) -> int:
        return int(self.shape_basis.shape[1])

    @property
    def n_expression(self) -> int:
        return int(self.expression_basis.shape[1])

    def vertices(self, shape_coeffs: np.ndarray | None = None, expression_coeffs: np.ndarray | None = None) -> np.ndarray:
        """``(N, 3)`` model-space vertices (mm) for the given coefficients (zeros if None)."""
        flat = self.mean.reshape(-1).copy()
        if shape_coeffs is not None:
            c = np.asarray(shape_coeffs, self.shape_basis.dtype)
            flat += self.shape_basis[:, : len(c)] @ c
        if expression_coeffs is not None:
            e = np.asarray(expression_coeffs, self.expression_basis.dtype)
            flat += self.expression_basis[:, : len(e)] @ e
        return flat.reshape(-1, 3)

    def landmark_array(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ibug_index0, vertex)``: 0-based landmark numbers and their vertices, sorted."""
        keys = sorted(self.landmark_vertices)
        return np.array([k - 1 for k in keys]), np.array([self.landmark_vertices[k] for k in keys])
