"""One finished training/evaluation sample in df2net's crop frame, as every data maker returns it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Sample"]


@dataclass(eq=False)
class Sample:
    """One finished sample in df2net's crop frame (``docs/conventions.md``)."""

    image: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) bool
    depth: np.ndarray  # (S, S) float32 crop px, 0 off the surface
    depth_base: np.ndarray  # (S, S) float32
    normals: np.ndarray  # (S, S, 3) float32
    detail_mask: np.ndarray | None  # (S, S) bool
    landmarks: np.ndarray  # (68, 2) crop frame
    params: dict[str, Any] = field(default_factory=dict)
    # Albedo-only marks (synthetic faces that wear them): where they are, and the identical render
    # without them, so what the marks alone do to a prediction can be measured.
    marks_mask: np.ndarray | None = None  # (S, S) bool
    image_unmarked: np.ndarray | None = None  # (S, S, 3) uint8
