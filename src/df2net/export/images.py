"""Image files of a face: the normal map, the mask and plain RGB pictures (crop, preview)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from df2net.export.common import check_2d, check_mask, check_rgb
from df2net.export.png import write_png


def write_normals_png(path: str | Path, normals: np.ndarray, mask: np.ndarray) -> None:
    """Write unit normals ``(H, W, 3)`` as RGB ``(n + 1) / 2 * 255`` (X red, Y green, Z blue).

    Pixels outside ``mask`` (or with non-finite normals) are black.
    """
    from df2net.geometry import normals_to_rgb  # imported here: geometry pulls in torch

    normals = np.asarray(normals, dtype=np.float64)
    if normals.ndim != 3 or normals.shape[2] != 3:
        raise ValueError(f"normals must be (H, W, 3), got {normals.shape}")
    finite = np.isfinite(normals).all(axis=2)
    valid = check_mask(mask, normals.shape[:2]) & finite
    write_rgb_png(path, normals_to_rgb(np.where(finite[..., None], normals, 0.0), valid))


def read_normals_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a normal map written by :func:`write_normals_png`.

    Returns:
        ``normals`` ``(H, W, 3)`` float32 unit vectors (0 on background) and ``mask`` ``(H, W)``
        bool (pixels that are not black; a visible normal has ``n_z > 0``, so blue > 127).
    """
    from df2net.geometry import rgb_to_normals

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    mask = rgb.any(axis=2)
    return rgb_to_normals(rgb, mask), mask


def write_mask_png(path: str | Path, mask: np.ndarray) -> None:
    """Write a bool mask ``(H, W)`` as an 8-bit grayscale PNG, 255 on the face and 0 elsewhere."""
    mask = np.asarray(mask)
    check_2d("mask", mask)
    write_png(path, np.where(mask.astype(bool), 255, 0).astype(np.uint8))


def write_rgb_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB image ``(H, W, 3)`` uint8 as a PNG."""
    write_png(path, check_rgb("image", rgb))
