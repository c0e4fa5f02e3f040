"""A face model's surface in a depth image: which region each pixel shows, and facet-free depth.

Used by every data maker that renders a face model (synthetic faces, landmark fits), so the
mouth's edge is treated one way everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["pixel_regions", "smooth_by_region", "render_depth"]


def pixel_regions(model: Any, face_index: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``(P,)`` :class:`df2net.data.ict.Region` code of each surface pixel (all skin for the Surrey model).

    Args:
        model: the face model rasterized (Loop-subdivided any number of times).
        face_index: ``(H, W)`` the raster's triangle per pixel; ``m``: ``(H, W)`` its mask.

    A subdivided triangle's coarse parent is its index modulo the coarse count (each Loop step
    writes four blocks of children in the parents' order).
    """
    return model.triangle_regions(face_index[m] % len(model.triangles))


def smooth_by_region(depth: np.ndarray, m: np.ndarray, skin_px: np.ndarray, sigma: float) -> np.ndarray:
    """The rendered depth smoothed (its facets gone) within the skin and within the rest apart.

    Smoothing across the lips' edge into an open mouth would blur the step the camera sees.

    Args:
        depth: ``(H, W)`` rendered depth; ``m``: ``(H, W)`` its surface mask.
        skin_px: ``(P,)`` bool over the mask's pixels: skin.
        sigma: Gaussian standard deviation, pixels.
    """
    from df2net.geometry import smooth_depth

    skin = np.zeros_like(m)
    skin[m] = skin_px
    out = smooth_depth(depth, skin, sigma)
    rest = m & ~skin
    if rest.any():
        out[rest] = smooth_depth(depth, rest, sigma)[rest]
    return out


def render_depth(model: Any, screen: np.ndarray, size: int, levels: int, smooth_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Depth ``(size, size)`` float32 (0 off the surface) and surface mask of a posed face model.

    ``screen``: ``(N, 3)`` the model's vertices in the image frame ``(u, v, z)``, z larger =
    nearer; the mesh is Loop-subdivided ``levels`` times, rasterized and smoothed by region.
    """
    from df2net.data.ict import Region
    from df2net.render import rasterize

    sub = model.subdivision(levels)
    ras = rasterize(sub.apply(screen), sub.faces, size, size)
    surface = ras.mask
    regions = pixel_regions(model, ras.face_index, surface)
    depth = smooth_by_region(ras.depth, surface, regions == Region.SKIN, smooth_px)
    depth[~surface] = 0.0
    return depth.astype(np.float32), surface
