"""Per-pixel maps: resampling an image-frame map into df2net's crop, and texture lookups.

:func:`warp_to_crop` is the one place a map rendered in image (or canvas) pixels is brought into
the square crop of :func:`df2net.face.crop_face`, with the same pixel-centre convention
(:func:`df2net.face.crop_to_image`). Depth values are lengths in pixels, so a depth map must also
be multiplied by ``S / side``; :func:`warp_depth_to_crop` does both.
"""

from __future__ import annotations

import numpy as np

__all__ = ["warp_to_crop", "warp_depth_to_crop", "sample_bilinear"]


def _crop_grid(crop_box: tuple[float, ...], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates ``(u, v)`` of every crop pixel centre, each ``(size, size)``.

    ``crop_box`` is ``(x0, y0, side[, angle])`` (:mod:`df2net.cropbox`): a turned crop's grid is
    turned with it, so a map warped with it lines up with :func:`df2net.face.crop_face`'s image.
    """
    from df2net.cropbox import crop_to_image

    vv, uu = np.mgrid[0:size, 0:size].astype(np.float64)
    pts = crop_to_image(np.stack([uu, vv], axis=-1), crop_box, size)
    return pts[..., 0], pts[..., 1]


def warp_to_crop(
    values: np.ndarray,
    crop_box: tuple[float, float, float],
    size: int,
    valid: np.ndarray | None = None,
    mode: str = "bilinear",
    fill: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample an image-frame map ``(H, W[, C])`` into the ``size x size`` crop.

    Args:
        values: the map; any dtype for ``"nearest"``, float for ``"bilinear"``.
        crop_box: ``(x0, y0, side[, angle])`` of the crop in the map's pixels.
        size: crop side in pixels.
        valid: ``(H, W)`` bool, where ``values`` is defined (None: everywhere).
        mode: ``"nearest"`` (masks, indices) or ``"bilinear"`` (depth, normals, UVs): a crop
            pixel is valid only when all four taps are.
        fill: the value of invalid crop pixels.

    Returns:
        ``(warped, valid_crop)``: ``(size, size[, C])`` in ``values``'s dtype (float32 for
        bilinear) and the ``(size, size)`` bool validity.
    """
    arr = np.asarray(values)
    h, w = arr.shape[:2]
    ok = np.ones((h, w), bool) if valid is None else np.asarray(valid, bool)
    u, v = _crop_grid(crop_box, size)
    if mode == "nearest":
        iu = np.rint(u).astype(np.int64)
        iv = np.rint(v).astype(np.int64)
        inside = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
        iu_c, iv_c = np.clip(iu, 0, w - 1), np.clip(iv, 0, h - 1)
        good = inside & ok[iv_c, iu_c]
        out = arr[iv_c, iu_c].copy()
        out[~good] = fill
        return out, good
    if mode != "bilinear":
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    u0 = np.floor(u).astype(np.int64)
    v0 = np.floor(v).astype(np.int64)
    fu = (u - u0).astype(np.float32)
    fv = (v - v0).astype(np.float32)
    inside = (u0 >= 0) & (u0 + 1 < w) & (v0 >= 0) & (v0 + 1 < h)
    a0, b0 = np.clip(u0, 0, w - 2), np.clip(v0, 0, h - 2)
    good = inside & ok[b0, a0] & ok[b0, a0 + 1] & ok[b0 + 1, a0] & ok[b0 + 1, a0 + 1]
    f = arr.astype(np.float32, copy=False)
    if f.ndim == 3:
        fu, fv = fu[..., None], fv[..., None]
    out = (
        f[b0, a0] * (1 - fu) * (1 - fv)
        + f[b0, a0 + 1] * fu * (1 - fv)
        + f[b0 + 1, a0] * (1 - fu) * fv
        + f[b0 + 1, a0 + 1] * fu * fv
    ).astype(np.float32)
    out[~good] = fill
    return out, good


def warp_depth_to_crop(
    depth: np.ndarray, valid: np.ndarray, crop_box: tuple[float, float, float], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """An image-pixel depth map into crop-pixel depth: bilinear warp, values times ``size / side``.

    Returns:
        ``(depth_crop, valid_crop)``; depth 0 where invalid.
    """
    out, good = warp_to_crop(depth, crop_box, size, valid=valid, mode="bilinear")
    out *= np.float32(size / float(crop_box[2]))
    out[~good] = 0.0
    return out, good


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``image`` ``(H, W[, C])`` at float pixel positions (centres at integers).

    Positions are clamped to the image; returns ``x.shape (+ (C,))`` float32.
    """
    img = np.asarray(image, np.float32)
    h, w = img.shape[:2]
    x = np.clip(np.asarray(x, np.float64), 0, w - 1)
    y = np.clip(np.asarray(y, np.float64), 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
    fx = (x - x0).astype(np.float32)
    fy = (y - y0).astype(np.float32)
    if img.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    return (
        img[y0, x0] * (1 - fx) * (1 - fy)
        + img[y0, x0 + 1] * fx * (1 - fy)
        + img[y0 + 1, x0] * (1 - fx) * fy
        + img[y0 + 1, x0 + 1] * fx * fy
    ).astype(np.float32)
