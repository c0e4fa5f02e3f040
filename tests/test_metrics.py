"""Metric functions on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from df2net.metrics import align_depth, depth_error, depth_range, mean_normal_angle, normal_angles


def _bump(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:size, 0:size].astype(np.float32)
    r2 = ((u - size / 2) ** 2 + (v - size / 2) ** 2) / (size / 3) ** 2
    mask = r2 < 1.0
    return np.where(mask, 20.0 * np.sqrt(np.clip(1 - r2, 0, 1)), 0.0).astype(np.float32), mask


def test_identical_depth_has_zero_error() -> None:
    depth, mask = _bump()
    err = depth_error(depth, depth, mask)
    assert err.mae == pytest.approx(0.0, abs=1e-4)
    assert err.rmse == pytest.approx(0.0, abs=1e-4)


def test_scaled_and_shifted_copy_has_zero_error_after_alignment() -> None:
    depth, mask = _bump()
    err = depth_error(depth * 0.37 + 12.5, depth, mask)
    assert err.mae == pytest.approx(0.0, abs=1e-3)
    np.testing.assert_allclose(align_depth(depth * 3 - 4, depth, mask)[mask], depth[mask], atol=1e-3)


def test_error_is_reported_against_the_depth_range() -> None:
    depth, mask = _bump()
    noisy = depth.copy()
    noisy[mask] += np.where(np.arange(mask.sum()) % 2 == 0, 1.0, -1.0)  # +-1 px, zero mean
    err = depth_error(noisy, depth, mask)
    assert 0.8 < err.mae < 1.01
    assert err.percent_of_range == pytest.approx(100 * err.mae / depth_range(depth, mask))


def test_inverted_prediction_is_not_flipped_by_alignment() -> None:
    depth, mask = _bump()
    err = depth_error(-depth, depth, mask)
    assert err.mae > 1.0


def test_tilted_plane_has_known_normal_angle() -> None:
    flat = np.zeros((8, 8, 3), np.float32)
    flat[..., 2] = 1.0
    angle = np.radians(30.0)
    tilted = np.zeros_like(flat)
    tilted[..., 0] = np.sin(angle)
    tilted[..., 2] = np.cos(angle)
    mask = np.ones((8, 8), bool)
    assert mean_normal_angle(tilted, flat, mask) == pytest.approx(30.0, abs=1e-3)
    assert np.allclose(normal_angles(flat, flat), 0.0, atol=1e-3)


def test_empty_mask_gives_nan() -> None:
    depth, _ = _bump()
    empty = np.zeros_like(depth, dtype=bool)
    assert np.isnan(depth_error(depth, depth, empty).mae)
    assert np.isnan(mean_normal_angle(np.ones((64, 64, 3)), np.ones((64, 64, 3)), empty))
