"""A detail score for real photos, which have no true depth: does the depth's shading match the photo?

For a depth map of a face crop: normals from the depth; a 9-term spherical-harmonics light and a
smooth albedo (a low-pass of the photo over that of the shading) fitted by least squares to the
photo's luminance inside the face mask, minus the eyes, brows and lips (from the 68 landmarks),
where albedo, not shape, makes the contrast; then the Pearson correlation, over the same pixels,
of the high-pass of the log of the rendered shading with the high-pass of the photo's
log-luminance. Logarithms make it blind to the photo's gamma and to a smooth albedo; the
high-pass (σ 4 px at the 512² crop) keeps the scale of wrinkles and pores.

**It can be faked.** A method that presses the photo's colour into the depth (dark = deep) makes
shading that follows every freckle, mole or eyebrow hair and scores high without any true relief.
Read it next to the false-relief column of ``df2net evaluate`` (albedo-only marks on synthetic
faces), never alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from df2net.config import CROP_SIZE
from df2net.metrics import high_pass, masked_blur, pearson

__all__ = ["DetailScoreConfig", "feature_mask", "fit_shading", "shading_detail_score"]

# Landmark indices (0-based, dlib/iBUG 68-point scheme) of the features left out of the fit.
BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))
EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
LIPS = tuple(range(48, 60))  # outer lip contour
EYE_INNER = (39, 42)


@dataclass(frozen=True)
class DetailScoreConfig:
    """Scales of :func:`shading_detail_score`, in pixels of the 512² crop (scaled to others).

    Attributes:
        sigma_px: high-pass of shading and log-luminance: ``x`` minus its masked Gaussian blur.
        albedo_sigma_px: the smooth albedo's low-pass (0.02 of the crop side, as the training's
            shading loss).
        erode_px: the face mask is eroded this much (the border's normals are one-sided).
        feature_margin: eyes, brows and lips are grown by this times the inner-eye distance.
        light_reg: ridge weight of the SH lighting fit.
        light_iterations: rounds of albedo and light refits (:func:`fit_shading`).
        min_pixels: fewer scored pixels than this give nan.
    """

    sigma_px: float = 4.0
    albedo_sigma_px: float = 10.0
    erode_px: int = 8
    feature_margin: float = 0.15
    light_reg: float = 1e-3
    light_iterations: int = 8
    min_pixels: int = 500


def feature_mask(landmarks: np.ndarray, size: int, margin: float = DetailScoreConfig().feature_margin) -> np.ndarray:
    """``(size, size)`` bool: the eyes, brows and lips of 68 crop landmarks ``(68, 2)``, grown.

    Eyes and lips are their landmark polygons; each brow a band as thick as the margin around
    its five points; all grown by ``margin`` times the inner-eye distance ``|p39 - p42|``.
    """
    from scipy.ndimage import binary_dilation

    from df2net.face import fill_polygon

    p = np.asarray(landmarks, np.float64)
    if p.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {p.shape}")
    grow = margin * float(np.linalg.norm(p[EYE_INNER[0]] - p[EYE_INNER[1]]))
    out = np.zeros((size, size), bool)
    for idx in (*EYES, LIPS):
        out |= fill_polygon(p[list(idx)], size, size)
    for idx in BROWS:
        brow = p[list(idx)]
        up = np.array([0.0, grow])
        out |= fill_polygon(np.concatenate([brow - up, (brow + up)[::-1]]), size, size)
    radius = round(grow)
    return binary_dilation(out, iterations=radius) if radius > 0 else out


def fit_shading(
    normals: np.ndarray,
    intensity: np.ndarray,
    region: np.ndarray,
    albedo_sigma: float,
    reg: float = 1e-3,
    iterations: int = 8,
    max_fit_pixels: int = 20_000,
) -> tuple[np.ndarray, np.ndarray]:
    """SH light and smooth albedo explaining ``intensity`` on ``region``: ``(shading, albedo)``.

    Light fitted with unit albedo; then ``iterations`` times: albedo = masked low-pass of the
    intensity over that of the shading (sigma ``albedo_sigma``), light refitted under that
    albedo (a smooth albedo and the light's second-order terms trade off, so one round leaves
    the light off). The 9 light coefficients are fitted on an even subsample of at most
    ``max_fit_pixels`` region pixels. ``normals (H, W, 3)``, ``intensity (H, W)``, ``region
    (H, W)`` bool; returns the unit-albedo shading and the albedo, both ``(H, W)`` float64.
    """
    from df2net.shading import fit_sh_lighting, sh_basis

    n = np.asarray(normals, np.float64)
    lum = np.asarray(intensity, np.float64)
    basis = sh_basis(n)  # (H, W, 9): shading = basis @ light
    idx = np.flatnonzero(region)
    idx = idx[:: max(1, idx.size // max_fit_pixels)]
    n_fit, lum_fit = n.reshape(-1, 3)[idx], lum.ravel()[idx]
    shading = basis @ fit_sh_lighting(n_fit, lum_fit, reg=reg)
    albedo = np.ones_like(lum)
    for _ in range(iterations):
        floor = 0.05 * float(np.mean(np.abs(shading[region]))) + 1e-6
        albedo = masked_blur(lum, region, albedo_sigma) / np.maximum(masked_blur(shading, region, albedo_sigma), floor)
        shading = basis @ fit_sh_lighting(n_fit, lum_fit, albedo=albedo.ravel()[idx], reg=reg)
    return shading, albedo


def shading_detail_score(
    image: np.ndarray,
    depth: np.ndarray,
    mask: np.ndarray,
    exclude: np.ndarray | None = None,
    cfg: DetailScoreConfig = DetailScoreConfig(),
) -> float:
    """Correlation of the depth's fine shading with the photo's fine luminance (module docstring).

    Args:
        image: ``(S, S, 3)`` uint8 crop.
        depth: ``(S, S)`` depth in crop pixels (any offset).
        mask: ``(S, S)`` bool face mask.
        exclude: ``(S, S)`` bool pixels to leave out (:func:`feature_mask`), or None.

    Returns:
        Pearson r in [-1, 1] of ``hp(log shading)`` and ``hp(log luminance)`` on the scored
        pixels; nan when fewer than ``cfg.min_pixels``. Can be faked: see the module docstring.
    """
    from scipy.ndimage import binary_erosion

    from df2net.geometry import depth_to_normals
    from df2net.shading import luminance

    k = mask.shape[0] / CROP_SIZE
    m = np.asarray(mask, bool)
    region = binary_erosion(m, iterations=max(round(cfg.erode_px * k), 1))
    if exclude is not None:
        region &= ~np.asarray(exclude, bool)
    if region.sum() < cfg.min_pixels:
        return float("nan")
    normals = depth_to_normals(np.asarray(depth, np.float32), m)
    lum = luminance(np.asarray(image, np.float64) / 255.0)
    shading, _ = fit_shading(normals, lum, region, cfg.albedo_sigma_px * k, cfg.light_reg, cfg.light_iterations)
    floor = 1e-3 * float(np.mean(np.abs(shading[region]))) + 1e-6
    log_shading = np.log(np.maximum(shading, floor))
    log_lum = np.log(np.maximum(lum, 1.0 / 255.0))
    sigma = cfg.sigma_px * k
    return pearson(high_pass(log_shading, region, sigma)[region], high_pass(log_lum, region, sigma)[region])
