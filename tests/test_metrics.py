"""Metric functions on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from df2net.metrics import (
    ReliefConfig,
    align_depth,
    base_roughness,
    depth_error,
    depth_range,
    false_relief_um,
    mean_normal_angle,
    normal_angles,
    relief_region,
    relief_scores,
    tilt_error_deg,
)


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


def test_a_turned_face_scores_the_angle_of_its_turn_and_a_bump_alone_scores_none() -> None:
    depth, mask = _bump()
    v, u = np.mgrid[0:64, 0:64].astype(np.float32)
    turned = depth + np.tan(np.radians(20.0)) * (u - 32)  # the same bump turned 20 degrees about v
    assert tilt_error_deg(turned, depth, mask) == pytest.approx(20.0, abs=0.01)
    assert tilt_error_deg(depth, turned, mask) == pytest.approx(20.0, abs=0.01)
    assert tilt_error_deg(depth * 1.5 + 3.0, depth, mask) == pytest.approx(0.0, abs=1e-3)  # shape, not tilt
    bowl = depth + 0.05 * ((u - 32) ** 2 + (v - 32) ** 2)  # symmetric: no tilt
    assert tilt_error_deg(bowl, depth, mask) == pytest.approx(0.0, abs=0.05)
    assert np.isnan(tilt_error_deg(depth, depth, np.zeros_like(mask)))


def test_empty_mask_gives_nan() -> None:
    depth, _ = _bump()
    empty = np.zeros_like(depth, dtype=bool)
    assert np.isnan(depth_error(depth, depth, empty).mae)
    assert np.isnan(mean_normal_angle(np.ones((64, 64, 3)), np.ones((64, 64, 3)), empty))


# ------------------------------------------------------------------------------------------
# Relief against a base surface, and false relief under albedo-only marks
# ------------------------------------------------------------------------------------------

SIZE = 192


def _face() -> dict[str, np.ndarray]:
    """A disc "face": a gentle dome with a tall nose and two eye sockets (the base), plus grooves.

    The grooves (the relief) are horizontal valleys 0.15 px deep, Gaussian profile of 0.8 px,
    every 12 rows across the whole face, nose included, so part of them lies where the base's
    own high-pass is large.
    """
    v, u = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    c = SIZE / 2
    r2 = (u - c) ** 2 + (v - c) ** 2
    mask = r2 < 85.0**2
    dome = np.sqrt(np.maximum(300.0**2 - r2, 0.0)) - 300.0 + 60.0
    nose = 25.0 * np.exp(-((u - c) ** 2 + (v - c - 5) ** 2) / (2 * 9.0**2))
    eyes = sum(-8.0 * np.exp(-((u - c - dx) ** 2 + (v - c + 25) ** 2) / (2 * 7.0**2)) for dx in (-30, 30))
    base = np.where(mask, dome + nose + eyes, 0.0)
    dist = np.abs(((v - 3) % 12) - 6.0)  # distance to the nearest groove row
    relief = np.where(mask, -0.15 * np.exp(-(dist**2) / (2 * 0.8**2)), 0.0)
    relief[np.abs(relief) < 1e-3] = 0.0
    features = np.where(mask, nose + eyes, 0.0)
    return {"base": base, "features": features, "relief": relief, "depth": base + relief, "mask": mask, "detail": relief != 0}


def _scores(pred: np.ndarray, f: dict[str, np.ndarray], cfg: ReliefConfig | None = None):
    return relief_scores(pred, f["depth"], f["base"], f["mask"], f["detail"], cfg or ReliefConfig())


def test_exact_relief_scores_one_and_half_relief_has_slope_half() -> None:
    f = _face()
    exact = _scores(f["depth"], f)
    assert exact.r == pytest.approx(1.0, abs=1e-6) and exact.slope == pytest.approx(1.0, abs=1e-6)
    assert exact.n_pixels >= ReliefConfig().min_pixels
    half = _scores(f["base"] + 0.5 * f["relief"], f)
    assert half.r == pytest.approx(1.0, abs=1e-6) and half.slope == pytest.approx(0.5, abs=1e-6)


def test_no_relief_scores_zero() -> None:
    f = _face()
    none = _scores(f["base"], f)
    assert none.slope == pytest.approx(0.0, abs=1e-9) and none.r == 0.0


def test_smooth_large_scale_error_is_not_relief() -> None:
    f = _face()
    v, u = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    error = 2.0 * np.sin(2 * np.pi * (u + 0.5 * v) / 300.0) + 0.1 * u + 0.05 * v  # px, smooth
    assert np.std(error[f["mask"]]) > 30 * np.std(f["relief"][f["mask"]])
    s = _scores(f["depth"] + error, f)
    assert s.r > 0.97 and s.slope == pytest.approx(1.0, abs=0.05)


def test_noise_uncorrelated_with_relief_scores_near_zero() -> None:
    f = _face()
    noise = np.random.default_rng(0).normal(0.0, 0.1, f["base"].shape)
    s = _scores(f["base"] + noise, f)
    assert abs(s.r) < 0.05 and abs(s.slope) < 0.1


def test_smooth_base_rule_makes_the_score_insensitive_to_the_base() -> None:
    """A wrong nose and eyes (20 % too deep, 1 px off) must not hide a perfect relief."""
    f = _face()
    wrong_base = f["base"] - f["features"] + 1.2 * np.roll(f["features"], 1, axis=1)
    pred = align_depth(wrong_base + f["relief"], f["depth"], f["mask"])
    ruled = _scores(pred, f)
    everywhere = _scores(pred, f, ReliefConfig(base_hp_max_px=float("inf")))
    assert ruled.r > 0.95 and ruled.slope == pytest.approx(1.0, abs=0.1)
    assert everywhere.r < 0.6  # without the rule the base's error swamps the relief
    # The rule removes the nose and the eye sockets, not the dome.
    region = relief_region(f["base"], f["mask"], f["detail"])
    c = SIZE // 2
    assert not region[c - 6 : c + 6, c - 6 : c + 6].any() and region[c + 50 : c + 60, c - 5 : c + 5].any()
    assert base_roughness(f["base"], f["mask"])[c + 55, c] < ReliefConfig().base_hp_max_px


def test_values_outside_the_mask_do_not_leak_into_the_score() -> None:
    f = _face()
    pred = f["depth"].copy()
    pred[~f["mask"]] = 1000.0
    assert _scores(pred, f) == _scores(f["depth"], f)


def test_a_region_without_relief_gives_nan() -> None:
    f = _face()
    s = relief_scores(f["depth"], f["depth"], f["base"], f["mask"], np.zeros_like(f["mask"]))
    assert np.isnan(s.r) and np.isnan(s.slope) and s.n_pixels == 0


def test_false_relief_is_zero_for_identical_predictions() -> None:
    f = _face()
    marks = np.zeros_like(f["mask"])
    marks[60:80, 60:80] = True
    assert false_relief_um(f["depth"], f["depth"], f["mask"], marks, 1.8) == 0.0


def test_false_relief_of_a_bump_under_the_marks_is_its_height_in_um() -> None:
    f = _face()
    marks = np.zeros_like(f["mask"])
    marks[60:80, 60:80] = True  # inside the face, 400 of ~22,700 pixels
    marks[:5, :5] = True  # outside the face: ignored
    marked = f["depth"] + 0.3 * marks + 7.0  # a 0.3 px plateau under the marks, and an offset
    marked[:5, :5] += 50.0
    assert false_relief_um(marked, f["depth"], f["mask"], marks, 1.5) == pytest.approx(0.3 / 1.5 * 1000, rel=1e-6)
    assert np.isnan(false_relief_um(marked, f["depth"], f["mask"], np.zeros_like(marks), 1.5))


# ------------------------------------------------------------------------------------------
# Detail score for photos without truth: a sphere with bumps under a known SH light
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bumpy_sphere() -> dict[str, np.ndarray]:
    """A sphere with 60 small bumps (σ 2 px, 1 px high) lit by a known SH light, smooth albedo.

    256² crop, so the score's scales are half those at 512² (high-pass σ 2 px).
    """
    from scipy import ndimage

    from df2net.geometry import depth_to_normals
    from df2net.shading import ambient_sh, directional_sh, shade

    size = 256
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    c = size / 2
    r2 = (u - c) ** 2 + (v - c) ** 2
    mask = r2 < (0.4 * size) ** 2
    sphere = np.sqrt(np.maximum((0.45 * size) ** 2 - r2, 0.0))
    impulses = np.zeros_like(sphere)
    rows, cols = np.random.default_rng(1).integers(int(0.2 * size), int(0.8 * size), (2, 60))
    impulses[rows, cols] = 2 * np.pi * 2.0**2  # a unit-height Gaussian bump after the blur
    bumps = ndimage.gaussian_filter(impulses, 2.0)
    light = ambient_sh(0.45) + directional_sh(np.array([0.5, 0.4, 0.8]), 0.55)
    truth = (sphere + bumps).astype(np.float32)
    albedo = 0.55 + 0.15 * np.sin(u / 30.0) * np.cos(v / 40.0)
    lit = albedo * shade(depth_to_normals(truth, mask), light)
    image = np.repeat((np.clip(lit, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    return {"image": image, "mask": mask, "sphere": sphere.astype(np.float32), "truth": truth}


def test_detail_score_is_high_with_the_bumps_and_low_without(bumpy_sphere) -> None:
    from df2net.detail_score import shading_detail_score

    s = bumpy_sphere
    with_bumps = shading_detail_score(s["image"], s["truth"], s["mask"])
    smooth = shading_detail_score(s["image"], s["sphere"], s["mask"])
    half = shading_detail_score(s["image"], s["sphere"] + 0.5 * (s["truth"] - s["sphere"]), s["mask"])
    assert with_bumps > 0.85 and abs(smooth) < 0.3
    assert half > 0.75  # a correlation: shallower bumps in the right places still match


def test_detail_score_ignores_excluded_pixels_and_needs_enough_of_them(bumpy_sphere) -> None:
    from df2net.detail_score import shading_detail_score

    s = bumpy_sphere
    image = s["image"].copy()
    hole = np.zeros_like(s["mask"])
    hole[100:140, 100:140] = True
    image[hole] = 255 - image[hole]  # nonsense there, e.g. an eye
    excluded = shading_detail_score(image, s["truth"], s["mask"], exclude=hole)
    assert excluded > 0.85 and shading_detail_score(image, s["truth"], s["mask"]) < excluded - 0.2
    assert np.isnan(shading_detail_score(image, s["truth"], s["mask"], exclude=s["mask"]))


def test_feature_mask_covers_eyes_brows_and_lips_only() -> None:
    from df2net.detail_score import feature_mask

    lm = np.zeros((68, 2))
    lm[:17] = np.stack([np.linspace(40, 216, 17), 200 + 20 * np.sin(np.linspace(0, np.pi, 17))], 1)  # jaw
    angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    ring = np.stack([12 * np.cos(angles), 6 * np.sin(angles)], 1)
    lm[36:42] = ring[[3, 2, 1, 0, 5, 4]] + (80, 100)  # left eye: outer corner first, inner (39) at u=92
    lm[42:48] = ring[[3, 2, 1, 0, 5, 4]] + (176, 100)  # right eye: inner corner (42) at u=164
    lm[17:22] = np.stack([np.linspace(62, 98, 5), np.full(5, 80.0)], 1)
    lm[22:27] = np.stack([np.linspace(158, 194, 5), np.full(5, 80.0)], 1)
    lm[48:60] = np.stack([128 + 24 * np.cos(np.linspace(0, 2 * np.pi, 12, endpoint=False)),
                          190 + 8 * np.sin(np.linspace(0, 2 * np.pi, 12, endpoint=False))], 1)
    lm[27:36] = (128, 140)  # nose: not a feature here
    out = feature_mask(lm, 256)
    for u, v in ((80, 100), (176, 100), (80, 80), (176, 80), (128, 190), (86, 92)):
        assert out[v, u], (u, v)
    for u, v in ((128, 50), (70, 150), (186, 150), (128, 140), (128, 120)):
        assert not out[v, u], (u, v)
