"""Depth and normal error metrics, each a pure function of arrays (see docs/conventions.md)."""

from __future__ import annotations

from dataclasses import dataclass

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
