"""The photo searched for faces: its pixels, and quick turned patches of it for the detectors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from df2net.cropbox import as_crop_box, crop_affine


class Photo:
    """The photo searched: its pixels, and quick turned patches of it for the detectors."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.image = Image.fromarray(rgb)

    def sample(self, box: Sequence[float], n: int) -> np.ndarray:
        """The square ``box`` (:mod:`df2net.cropbox`) as an ``n x n`` patch, quickly: the region
        shrunk by a whole factor with a box filter, then one bilinear affine resampling."""
        x0, y0, side, angle = as_crop_box(box)
        k = max(1, int(side / n))
        image, (ox, oy) = self.image, (0.0, 0.0)
        if k > 1:
            cx, cy = x0 + 0.5 * side, y0 + 0.5 * side
            a = math.radians(angle)
            half = 0.5 * side * (abs(math.cos(a)) + abs(math.sin(a))) + 2 * k
            left, top = math.floor(cx - half), math.floor(cy - half)
            image = image.crop((left, top, math.ceil(cx + half), math.ceil(cy + half))).reduce(k)
            # Shrunk pixel j has its centre at image point left + k j + (k - 1) / 2.
            ox, oy = left + 0.5 * (k - 1), top + 0.5 * (k - 1)
        box_k = ((x0 - ox) / k, (y0 - oy) / k, side / k, angle)
        m = crop_affine(box_k, n)  # crop pixel (u, v, 1) -> pixel of `image`; below in edge units
        off = m[:, 2] - 0.5 * (m[:, 0] + m[:, 1]) + 0.5
        coeffs = (m[0, 0], m[0, 1], off[0], m[1, 0], m[1, 1], off[1])
        out = image.transform((n, n), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
        return np.asarray(out)


def as_rgb_image(rgb: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` or ``(H, W)`` uint8 image as a contiguous ``(H, W, 3)`` uint8 array.

    Raises:
        ValueError: any other dtype or shape.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected an (H, W, 3) or (H, W) uint8 image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr)
