"""Depth, normal and relief metrics, each a pure function of arrays (see docs/conventions.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


def align_depth(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``pred`` after the least-squares scale and offset that best fit ``true`` inside ``mask``.

    Depth from one photo is known up to scale and offset (and the 3DMM fit's own scale is a
    guess), so every method is compared after this alignment.
    """
    p = pred[mask].astype(np.float64)
    t = true[mask].astype(np.float64)
    if p.size < 2:
        return pred.astype(np.float32)
    a = np.stack([p, np.ones_like(p)], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(a, t, rcond=None)
    if not np.isfinite(scale) or scale <= 0:  # a flat or inverted prediction: offset only
        scale, offset = 1.0, float(np.mean(t - p))
    return (pred * scale + offset).astype(np.float32)


def depth_range(true: np.ndarray, mask: np.ndarray) -> float:
    """Robust depth range of the face: 99th minus 1st percentile inside the mask."""
    values = true[mask]
    if values.size == 0:
        return 0.0
    lo, hi = np.percentile(values, [1, 99])
    return float(hi - lo)


@dataclass(frozen=True)
class DepthError:
    """Depth error after alignment: mean absolute and RMS (crop pixels), and % of face depth range."""

    mae: float
    rmse: float
    percent_of_range: float


def depth_error(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> DepthError:
    """Depth error of ``pred`` against ``true`` inside ``mask`` after :func:`align_depth`."""
    aligned = align_depth(pred, true, mask)
    diff = (aligned - true)[mask].astype(np.float64)
    if diff.size == 0:
        return DepthError(float("nan"), float("nan"), float("nan"))
    mae = float(np.mean(np.abs(diff)))
    rmse = float(np.sqrt(np.mean(diff**2)))
    rng = depth_range(true, mask)
    return DepthError(mae, rmse, 100.0 * mae / rng if rng > 0 else float("nan"))


def normal_angles(pred_normals: np.ndarray, true_normals: np.ndarray) -> np.ndarray:
    """Per-pixel angle in degrees between two ``(..., 3)`` normal fields."""
    p = pred_normals / np.maximum(np.linalg.norm(pred_normals, axis=-1, keepdims=True), 1e-12)
    t = true_normals / np.maximum(np.linalg.norm(true_normals, axis=-1, keepdims=True), 1e-12)
    cos = np.clip(np.sum(p * t, axis=-1), -1.0, 1.0)
    return np.degrees(np.arccos(cos)).astype(np.float32)


def mean_normal_angle(pred_normals: np.ndarray, true_normals: np.ndarray, mask: np.ndarray) -> float:
    """Mean angle in degrees between the normal fields inside ``mask`` (nan if it is empty)."""
    if not mask.any():
        return float("nan")
    return float(np.mean(normal_angles(pred_normals[mask], true_normals[mask])))


def plane_slopes(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The slopes ``(a, b)`` of the least-squares plane ``a u + b v + c`` of ``depth`` inside
    ``mask`` (depth per pixel along columns ``u`` and rows ``v``); nan if the mask holds < 3 pixels."""
    v, u = np.nonzero(mask)
    if u.size < 3:
        return np.full(2, np.nan)
    basis = np.stack([u, v, np.ones_like(u)], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(basis, depth[v, u].astype(np.float64), rcond=None)
    return coef[:2]


def tilt_error_deg(aligned: np.ndarray, true: np.ndarray, mask: np.ndarray) -> float:
    """Angle in degrees between the best planes (:func:`plane_slopes`) of an aligned depth and the
    truth inside ``mask``: the error of the face's overall tilt, which an error of the pose's
    depth (a head turned the wrong way, or not enough) shows as."""
    return slopes_angle_deg(plane_slopes(aligned, mask), plane_slopes(true, mask))


def slopes_angle_deg(a: np.ndarray, t: np.ndarray) -> float:
    """Angle in degrees between the planes of slopes ``a`` and ``t`` (:func:`plane_slopes`)."""
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(t))):
        return float("nan")
    na = np.array([-a[0], -a[1], 1.0]) / np.hypot(np.hypot(a[0], a[1]), 1.0)
    nt = np.array([-t[0], -t[1], 1.0]) / np.hypot(np.hypot(t[0], t[1]), 1.0)
    return float(np.degrees(np.arccos(np.clip(na @ nt, -1.0, 1.0))))


# --------------------------------------------------------------------------------------------
# Fine detail: what a method cannot fake
# --------------------------------------------------------------------------------------------


def masked_blur(x: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``x (H, W)`` normalised inside ``mask (H, W)``: float64 ``(H, W)``.

    Each mask pixel becomes the Gaussian-weighted mean of the *mask* pixels around it
    (:func:`df2net.geometry.smooth_depth`), so values outside the mask (the background, a face
    border) never leak in; outside the mask it is 0.
    """
    from df2net.geometry import smooth_depth

    m = np.asarray(mask, bool)
    return np.where(m, smooth_depth(x, m, sigma), 0.0).astype(np.float64)


def high_pass(x: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """``x`` minus its :func:`masked_blur` inside ``mask``, 0 outside: float64 ``(H, W)``."""
    m = np.asarray(mask, bool)
    return np.where(m, np.asarray(x, np.float64) - masked_blur(x, m, sigma), 0.0)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-size samples; 0 if ``a`` is constant, nan if ``b`` is."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if b.size < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    var_a, var_b = float(np.mean(a * a)), float(np.mean(b * b))
    if var_b <= 0.0:
        return float("nan")
    if var_a <= 1e-24 * var_b:  # no signal at all: no agreement
        return 0.0
    return float(np.mean(a * b) / np.sqrt(var_a * var_b))


@dataclass(frozen=True)
class ReliefConfig:
    """Where and at which scale :func:`relief_scores` compares relief (pixels of the 512² crop).

    Attributes:
        sigma_px: the high-pass is ``x`` minus its masked Gaussian blur of this sigma (the scale
            of the training's relief target).
        near_px: the detail mask is dilated this many pixels (the high-pass of a ~1 px wrinkle
            rings out to about ``sigma_px`` around it).
        erode_px: the face mask is eroded this many pixels, 2 ``sigma_px``: nearer the border the
            masked blur is one-sided, so a smooth tilt of the error (slope ``g``) would leak
            into the high-pass as about ``0.29 sigma g`` at ``sigma`` from it, ``0.05 sigma g``
            at ``2 sigma``.
        base_window_px: sigma of the Gaussian window over which the base's high-pass RMS is taken.
        base_hp_max_px: pixels where that local RMS of the base surface's own high-pass exceeds
            this are left out (nose, eye sockets, lips, chin): there the base's high-pass (~1 px)
            dwarfs the relief's (~0.05-0.13 px), so any error in the predicted base shape would
            swamp the score. On six synthetic faces 0.15 px keeps 7-37 % of the pixels near the
            relief (1,700-13,000); with the true relief added, a base scaled by 1.1 and shifted
            1 px scores r 0.83-1.0 and the shipped F-Net's depth r 0.5-0.9 (with no exclusion:
            0.03-0.15 and 0.06-0.19).
        min_pixels: fewer pixels than this in the region give nan scores.
    """

    sigma_px: float = 4.0
    near_px: int = 4
    erode_px: int = 8
    base_window_px: float = 4.0
    base_hp_max_px: float = 0.15
    min_pixels: int = 200


class ReliefScore(NamedTuple):
    """Agreement of predicted with true relief: correlation, amplitude slope, pixels compared."""

    r: float
    slope: float
    n_pixels: int


def base_roughness(depth_base: np.ndarray, mask: np.ndarray, cfg: ReliefConfig = ReliefConfig()) -> np.ndarray:
    """Local RMS of the base surface's own high-pass, ``(H, W)`` float64 crop pixels (0 outside)."""
    hp = high_pass(depth_base, mask, cfg.sigma_px)
    return np.sqrt(np.maximum(masked_blur(hp * hp, mask, cfg.base_window_px), 0.0))


def relief_region(
    depth_base: np.ndarray, mask: np.ndarray, detail_mask: np.ndarray, cfg: ReliefConfig = ReliefConfig()
) -> np.ndarray:
    """Pixels :func:`relief_scores` compares, ``(H, W)`` bool.

    The detail mask dilated ``cfg.near_px``, inside the face mask eroded ``cfg.erode_px``, where
    the base is smooth: :func:`base_roughness` at most ``cfg.base_hp_max_px``. It depends on the
    truth only, so every method is scored on the same pixels.
    """
    from scipy.ndimage import binary_dilation, binary_erosion

    m, detail = np.asarray(mask, bool), np.asarray(detail_mask, bool)
    near = binary_dilation(detail, iterations=cfg.near_px) if cfg.near_px else detail
    inner = binary_erosion(m, iterations=cfg.erode_px) if cfg.erode_px else m
    return near & inner & (base_roughness(depth_base, m, cfg) <= cfg.base_hp_max_px)


def relief_scores(
    pred: np.ndarray,
    depth: np.ndarray,
    depth_base: np.ndarray,
    mask: np.ndarray,
    detail_mask: np.ndarray,
    cfg: ReliefConfig = ReliefConfig(),
) -> ReliefScore:
    """How well ``pred`` reproduces the true relief, with the base shape taken out.

    Rule: ``p = high_pass(pred - depth_base)`` and ``t = high_pass(depth - depth_base)`` (the
    true relief), each ``x - masked_blur(x, mask, cfg.sigma_px)``, compared on
    :func:`relief_region` (near the relief, inside the eroded mask, where the base is smooth).
    ``r`` is their Pearson correlation; ``slope = cov(p, t) / var(t)``, the share of the relief's
    amplitude reproduced (1 = all of it, 0 = none, 0.5 = half as deep). Subtracting the base
    first means a method is not credited for the face's own shape; its smooth, large-scale
    errors fall below the high-pass. The slope is ``r * std(p) / std(t)``: read it only where
    ``r`` is clearly above 0 (with ``r`` near 0 and a rough ``p`` it can be large either way).

    Args:
        pred: ``(H, W)`` predicted depth, already aligned to ``depth`` (:func:`align_depth`).
        depth: ``(H, W)`` true depth with relief; ``depth_base``: the same without relief.
        mask: ``(H, W)`` bool face mask; ``detail_mask``: ``(H, W)`` bool, where relief was added.

    Returns:
        :class:`ReliefScore`; ``r`` and ``slope`` are nan when the region has fewer than
        ``cfg.min_pixels`` pixels or no relief. A prediction with no relief at all has r = 0.
    """
    m = np.asarray(mask, bool)
    region = relief_region(depth_base, m, detail_mask, cfg)
    n = int(region.sum())
    if n < cfg.min_pixels:
        return ReliefScore(float("nan"), float("nan"), n)
    base = np.asarray(depth_base, np.float64)
    t = high_pass(np.asarray(depth, np.float64) - base, m, cfg.sigma_px)[region]
    p = high_pass(np.asarray(pred, np.float64) - base, m, cfg.sigma_px)[region]
    t_c, p_c = t - t.mean(), p - p.mean()
    var_t = float(np.mean(t_c * t_c))
    if var_t <= 0.0:
        return ReliefScore(float("nan"), float("nan"), n)
    return ReliefScore(pearson(p, t), float(np.mean(p_c * t_c) / var_t), n)


def false_relief_um(
    pred_marked: np.ndarray,
    pred_unmarked: np.ndarray,
    mask: np.ndarray,
    marks_mask: np.ndarray,
    px_per_mm: float,
    sigma_px: float | None = None,
) -> float:
    """Depth that albedo-only marks (colour, no relief) add to a prediction: RMS in µm.

    With ``sigma_px`` the difference is first high-passed (:func:`high_pass`, that sigma): the
    false *relief*, in the band where wrinkles live; without it, the whole change of shape,
    which for an image-to-depth network also holds broad, smooth bends under large marks.

    Rule: ``d = pred_marked - pred_unmarked`` (raw predictions from the image with and without the
    marks, same crop geometry, not aligned), minus its median over ``mask``; the RMS of ``d``
    over ``marks_mask & mask``, converted from crop pixels to µm (``px / px_per_mm * 1000``). A
    method that reads shape from shading without separating it from colour presses the marks
    into the surface; 0 is the truth (the surface is unchanged under the marks).

    Args:
        pred_marked, pred_unmarked: ``(H, W)`` depth in crop pixels.
        mask: ``(H, W)`` bool face mask; ``marks_mask``: ``(H, W)`` bool, where marks were painted.
        px_per_mm: crop pixels per millimetre.

    Returns:
        µm RMS; nan if the marks miss the mask or the scale is unknown.
    """
    m = np.asarray(mask, bool)
    sel = m & np.asarray(marks_mask, bool)
    if not sel.any() or not px_per_mm or px_per_mm <= 0:
        return float("nan")
    d = np.asarray(pred_marked, np.float64) - np.asarray(pred_unmarked, np.float64)
    if sigma_px:
        d = high_pass(d, m, sigma_px)
    d = d - float(np.median(d[m]))
    return float(np.sqrt(np.mean(d[sel] ** 2)) / px_per_mm * 1000.0)
