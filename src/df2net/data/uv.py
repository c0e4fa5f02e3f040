"""The Surrey Face Model's texture (UV) space: its raster, local scale, landmarks and drawing.

Everything drawn on the face in texture space (procedural relief in :mod:`df2net.data.detail`,
albedo-only marks in :mod:`df2net.data.marks`, photo textures in :mod:`df2net.data.textures`)
uses these helpers, so the modules above them import one way: ``sfm <- uv <- detail, marks,
textures <- synthetic``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy import ndimage

from df2net.data.sfm import SurreyModel

__all__ = ["StrokeCanvas", "bezier", "feature_mask_uv", "landmark_uv", "masked_blur", "mm_per_texel", "uv_raster"]


def masked_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: ``(blur(w v) / blur(w), blur(w))``; ``values`` ``(H, W[, C])``."""
    w = np.asarray(weight, np.float64)
    wb = ndimage.gaussian_filter(w, sigma, mode="constant")
    if values.ndim == 3:
        num = np.stack([ndimage.gaussian_filter(values[..., c] * w, sigma, mode="constant") for c in range(values.shape[2])], -1)
        out = num / np.maximum(wb, 1e-8)[..., None]
    else:
        out = ndimage.gaussian_filter(values * w, sigma, mode="constant") / np.maximum(wb, 1e-8)
    return out, wb


# ------------------------------------------------------------------------------------------
# UV-space rasterization (per model, per resolution; built once)
# ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _uv_raster_cached(sfm_dir: str, resolution: int) -> Any:
    from df2net.data.sfm import load_sfm
    from df2net.render import rasterize

    model = load_sfm(sfm_dir)
    r = resolution
    verts = np.c_[model.uv * r - 0.5, np.zeros(model.n_vertices)]
    return rasterize(verts, model.triangles, r, r)


def uv_raster(model: SurreyModel, resolution: int) -> Any:
    """The model's triangles rasterized in texture space (``u * R - 0.5``, ``v * R - 0.5``).

    Its ``face_index``/``bary``/``interpolate`` give, per texel, the surface point it shows.
    """
    return _uv_raster_cached(str(model.sfm_dir), int(resolution))


def landmark_uv(model: SurreyModel, resolution: int) -> dict[int, np.ndarray]:
    """0-based iBUG landmark -> its vertex's texel position ``(x, y)`` at ``resolution``."""
    return {k - 1: model.uv[v] * resolution - 0.5 for k, v in model.landmark_vertices.items()}


@functools.lru_cache(maxsize=8)
def _mm_per_texel_cached(sfm_dir: str, resolution: int) -> np.ndarray:
    from df2net.data.sfm import load_sfm

    model = load_sfm(sfm_dir)
    ras = uv_raster(model, resolution)
    v, f = model.mean, model.triangles
    a3 = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    t = model.uv * resolution
    e1, e2 = t[f[:, 1]] - t[f[:, 0]], t[f[:, 2]] - t[f[:, 0]]
    a2 = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    per_face = np.sqrt(a3 / np.maximum(a2, 1e-9))
    out = np.zeros((resolution, resolution), np.float32)
    m = ras.mask
    out[m] = per_face[ras.face_index[m]]
    # Smooth it (it is per triangle) and extend it a little past the layout's rim.
    sm, wb = masked_blur(out.astype(np.float64), m.astype(np.float64), resolution / 128)
    return np.where(wb > 1e-3, sm, np.median(per_face)).astype(np.float32)


def mm_per_texel(model: SurreyModel, resolution: int) -> np.ndarray:
    """``(R, R)`` millimetres of the mean face per texel (local scale of the UV layout)."""
    return _mm_per_texel_cached(str(model.sfm_dir), int(resolution))


@functools.lru_cache(maxsize=8)
def _feature_mask_cached(sfm_dir: str, resolution: int) -> np.ndarray:
    from df2net.data.sfm import load_sfm
    from df2net.face import fill_polygon

    model = load_sfm(sfm_dir)
    r = resolution
    lm = landmark_uv(model, r)
    scale = float(np.median(mm_per_texel(model, r)))  # mm per texel
    mask = np.zeros((r, r), bool)
    # Eyes, outer lips and nostrils as filled polygons.
    for ids in (range(36, 42), range(42, 48), [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59], range(31, 36)):
        pts = np.array([lm[i] for i in ids if i in lm])
        if len(pts) >= 3:
            mask |= fill_polygon(pts, r, r)
    # Brows as thick polylines: mark their points then dilate.
    brow = np.zeros((r, r), bool)
    for ids in (range(17, 22), range(22, 27)):
        pts = np.array([lm[i] for i in ids if i in lm])
        for a, b in zip(pts[:-1], pts[1:]):
            for t in np.linspace(0, 1, 32):
                x, y = np.rint(a + t * (b - a)).astype(int)
                if 0 <= x < r and 0 <= y < r:
                    brow[y, x] = True
    dist_feat = ndimage.distance_transform_edt(~mask) * scale
    dist_brow = ndimage.distance_transform_edt(~brow) * scale
    # Margins in mm: eyes/lips/nostrils 4 mm, brows 6 mm (their hair).
    return (dist_feat <= 4.0) | (dist_brow <= 6.0)


def feature_mask_uv(model: SurreyModel, resolution: int) -> np.ndarray:
    """``(R, R)`` bool: texels of the eyes, brows, lips and nostrils (with a margin)."""
    return _feature_mask_cached(str(model.sfm_dir), int(resolution))


def bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 24) -> np.ndarray:
    """``n`` points ``(n, 2)`` of the quadratic Bezier curve from ``p0`` over ``p1`` to ``p2``."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


class StrokeCanvas:
    """A UV-space map being drawn (a displacement, or a mark's coverage), with the texture scale."""

    def __init__(self, resolution: int, mm_per_tx: np.ndarray) -> None:
        self.r = resolution
        self.disp = np.zeros((resolution, resolution), np.float64)
        self.mm_per_tx = mm_per_tx
        self.k = 1.0 / float(np.median(mm_per_tx))  # texels per mm (typical)

    def stroke(
        self,
        pts: np.ndarray,
        depth_mm: float,
        width_mm: float,
        ridge: float = 0.0,
        ridge_side: float = 1.0,
        taper: float = 0.6,
    ) -> None:
        """Add a valley of ``depth_mm`` (Gaussian sigma ``width_mm``) along the polyline ``pts``."""
        pts = np.asarray(pts, np.float64)
        cx, cy = np.clip(np.rint(pts.mean(0)).astype(int), 0, self.r - 1)
        w = width_mm / float(self.mm_per_tx[cy, cx])  # sigma in texels, local scale
        reach = 3.2 * w * (1.0 + 1.5 * ridge)
        x0, y0 = np.floor(pts.min(0) - reach).astype(int)
        x1, y1 = np.ceil(pts.max(0) + reach).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.r - 1), min(y1, self.r - 1)
        if x1 <= x0 or y1 <= y0:
            return
        # Resample the curve densely, mark it in the box, and find each texel's nearest curve
        # sample with a distance transform (exact distance to that sample's float position).
        seg = np.diff(pts, axis=0)
        seg_len = np.linalg.norm(seg, axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg_len)])
        total = max(float(cum[-1]), 1e-9)
        s_at = np.linspace(0.0, total, max(int(total / 0.3), 2))
        cx_s = np.interp(s_at, cum, pts[:, 0])
        cy_s = np.interp(s_at, cum, pts[:, 1])
        tx_s = np.gradient(cx_s)
        ty_s = np.gradient(cy_s)
        h, wd = y1 - y0 + 1, x1 - x0 + 1
        ix = np.clip(np.rint(cx_s - x0).astype(int), 0, wd - 1)
        iy = np.clip(np.rint(cy_s - y0).astype(int), 0, h - 1)
        owner = np.full((h, wd), -1, np.int64)
        owner[iy, ix] = np.arange(len(s_at))
        _, (ny, nx) = ndimage.distance_transform_edt(owner < 0, return_indices=True)
        j = owner[ny, nx]
        ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        dx = xs - cx_s[j]
        dy = ys - cy_s[j]
        d = np.hypot(dx, dy)
        along = s_at[j] / total
        # Signed distance: + on the left of the direction of travel (x right, y down).
        sd = np.where(tx_s[j] * dy - ty_s[j] * dx >= 0, d, -d)
        fade = np.sin(np.pi * np.clip(along, 0.0, 1.0)) ** taper
        prof = -np.exp(-0.5 * (d / w) ** 2)
        if ridge > 0:
            prof += ridge * np.exp(-0.5 * ((sd * ridge_side - 2.2 * w) / (1.3 * w)) ** 2)
        self.disp[y0 : y1 + 1, x0 : x1 + 1] += depth_mm * fade * prof
