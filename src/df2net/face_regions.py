"""The mouth and eye regions of a face, from its 68 landmarks: the one place that knows the rule.

- **mouth**: the outer lips' polygon (landmarks 49-60, 0-based 48..59) widened by
  :data:`MOUTH_WIDEN` (6 %) of the eye-corner distance ``|lm[36] - lm[45]|``;
- **eyes**: each eye's polygon (landmarks 37-42 and 43-48, 0-based 36..41 and 42..47) widened by
  :data:`EYES_WIDEN` (12 %) of that distance (the lids around it).

Used to score expressions (``scripts/expression_regions.py``) and to weigh these regions more in
training (:attr:`df2net.train.config.LossConfig.region_boost`). Landmarks are ``(68, 2)`` ``(u, v)``
pixel coordinates of the grid the map is made on (pixel centres at integers, docs/conventions.md).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from df2net.face import fill_polygon

__all__ = ["EYES", "EYES_WIDEN", "MOUTH", "MOUTH_WIDEN", "expression_regions", "region_mask"]

#: Landmark groups (0-based indices) of the mouth: the outer lips.
MOUTH: tuple[tuple[int, ...], ...] = (tuple(range(48, 60)),)
#: Landmark groups of the eyes: the right and left eye of the 68-point scheme.
EYES: tuple[tuple[int, ...], ...] = (tuple(range(36, 42)), tuple(range(42, 48)))
#: How far the mouth polygon is widened, as a share of the eye-corner distance.
MOUTH_WIDEN = 0.06
#: How far the eye polygons are widened, as a share of the eye-corner distance.
EYES_WIDEN = 0.12


def region_mask(landmarks: np.ndarray, groups: tuple[tuple[int, ...], ...], widen: float, size: int) -> np.ndarray:
    """The landmarks' polygons filled on a ``size x size`` grid, dilated by ``widen`` times the eye-corner distance.

    Returns bool ``(size, size)``; the dilation is at least one pixel.
    """
    landmarks = np.asarray(landmarks)
    out = np.zeros((size, size), bool)
    for g in groups:
        out |= fill_polygon(landmarks[list(g)], size, size)
    eyes = float(np.linalg.norm(landmarks[36] - landmarks[45]))
    return ndimage.binary_dilation(out, iterations=max(1, int(round(widen * eyes))))


def expression_regions(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Mouth and eyes together (:data:`MOUTH` and :data:`EYES`, each widened by its share): bool ``(size, size)``."""
    return region_mask(landmarks, MOUTH, MOUTH_WIDEN, size) | region_mask(landmarks, EYES, EYES_WIDEN, size)
