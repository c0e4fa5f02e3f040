"""Finding every face (df2net.detect) and the turned crop (df2net.cropbox) that levels its eyes."""

from __future__ import annotations

import json

import face_photos
import numpy as np
import pytest
from PIL import Image

from df2net.cropbox import (
    box_corners,
    crop_affine,
    crop_to_image,
    image_to_crop,
    resample_crop,
    rotation,
)
from df2net.detect import eye_angle
from df2net.face import crop_face

# --------------------------------------------------------------------------------------------
# The turned crop box: geometry known exactly
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 17.0, -38.5, 90.0])
def test_turned_crop_box_round_trips_and_has_the_right_corners(angle):
    box = (-31.25, 17.5, 733.0, angle)
    pts = np.random.default_rng(0).uniform(-100, 900, size=(50, 2))
    np.testing.assert_allclose(crop_to_image(image_to_crop(pts, box, 512), box, 512), pts, atol=1e-9)
    np.testing.assert_allclose(image_to_crop(crop_to_image(pts, box, 512), box, 512), pts, atol=1e-9)
    # The crop's outer corners are the turned square's corners, in the same order.
    corners = crop_to_image(np.array([(-0.5, -0.5), (511.5, -0.5), (511.5, 511.5), (-0.5, 511.5)]), box, 512)
    np.testing.assert_allclose(corners, box_corners((-31.25, 17.5, 701.75, 750.5), angle), atol=1e-9)
    # The crop's u axis points along (cos, sin) of the angle; the affine matrix agrees.
    step = crop_to_image(np.array([1.0, 0.0]), box, 512) - crop_to_image(np.zeros(2), box, 512)
    np.testing.assert_allclose(step / np.linalg.norm(step), rotation(angle)[:, 0], atol=1e-12)
    uv1 = np.c_[pts, np.ones(len(pts))]
    np.testing.assert_allclose(uv1 @ crop_affine(box, 512).T, crop_to_image(pts, box, 512), atol=1e-9)


def test_three_value_crop_box_is_an_unturned_one():
    pts = np.array([[3.0, 4.0], [100.0, -7.0]])
    np.testing.assert_allclose(crop_to_image(pts, (5.0, 6.0, 200.0), 64), crop_to_image(pts, (5.0, 6.0, 200.0, 0.0), 64))


def _blob_image(centre, h=900, w=1200, sigma=10.0):
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat((blob * 255).astype(np.uint8)[..., None], 3, axis=2)


def _peak(img: np.ndarray) -> np.ndarray:
    c = img[..., 0].astype(float)
    sel = c > 0.5 * c.max()
    vv, uu = np.nonzero(sel)
    return np.array([np.average(uu, weights=c[sel]), np.average(vv, weights=c[sel])])


@pytest.mark.parametrize(("side", "angle"), [(150.0, 25.0), (400.0, -40.0), (1000.0, 60.0)])
def test_turned_crop_puts_image_points_where_to_crop_says(side, angle):
    """A bright blob at a known image point lands at ``to_crop`` of it in a turned crop."""
    from df2net.detect import Photo

    centre = np.array([523.0, 411.0])
    rgb = _blob_image(centre)
    box = (centre[0] - 0.37 * side, centre[1] - 0.61 * side, side, angle)
    expected = image_to_crop(centre, box, 256)
    assert np.abs(_peak(resample_crop(rgb, box, 256)) - expected).max() < 0.35
    assert np.abs(_peak(Photo(rgb).sample(box, 256)) - expected).max() < 0.5  # detection's quick patch


def test_turned_warp_to_crop_follows_the_crop():
    """A map warped into a turned crop holds, at each crop pixel, what the image had under it."""
    from df2net.data.maps import warp_depth_to_crop, warp_to_crop

    h, w = 300, 400
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = np.stack([uu, vv], axis=-1)
    box = (60.3, 40.7, 180.0, -33.0)
    warped, valid = warp_to_crop(coords, box, 64, mode="bilinear")
    assert valid.mean() > 0.9
    back = image_to_crop(warped[valid], box, 64)
    grid = np.stack(np.meshgrid(np.arange(64.0), np.arange(64.0)), axis=-1)[valid]
    np.testing.assert_allclose(back, grid, atol=1e-3)
    # A rendered known surface: a sphere's depth in image pixels comes out as the same sphere in
    # the turned crop's pixels (the rotation is about the view axis; lengths scale by S / side).
    c, r = np.array([150.0, 130.0]), 70.0
    depth = np.sqrt(np.clip(r**2 - (uu - c[0]) ** 2 - (vv - c[1]) ** 2, 0, None))
    inside = depth > 0
    d_crop, ok = warp_depth_to_crop(depth, inside, box, 128)
    k = 128 / box[2]
    cc = image_to_crop(c, box, 128)
    gv, gu = np.mgrid[0:128, 0:128].astype(np.float64)
    want = np.sqrt(np.clip((r * k) ** 2 - (gu - cc[0]) ** 2 - (gv - cc[1]) ** 2, 0, None))
    core = ok & (want > 0.3 * r * k)
    assert core.sum() > 1000
    assert np.abs(d_crop[core] - want[core]).max() < 0.05 * r * k


def test_to_crop_frame_turns_u_v_and_scales_z():
    from df2net.data.fitting import to_crop_frame

    box = (10.0, 20.0, 300.0, 41.0)
    screen = np.random.default_rng(1).uniform(0, 300, size=(20, 3))
    out = to_crop_frame(screen, box, 512)
    np.testing.assert_allclose(crop_to_image(out[:, :2], box, 512), screen[:, :2], atol=1e-9)
    np.testing.assert_allclose(out[:, 2], screen[:, 2] * 512 / 300.0)


# --------------------------------------------------------------------------------------------
# Detection on made photos (needs the demo photos and dlib)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_faces(demo_images, demo_detections):
    return [face_photos.DemoFace(n, rgb, demo_detections[n][0].landmarks) for n, rgb in demo_images.items()]


@pytest.fixture(scope="module")
def small_face_detector():
    pytest.importorskip("dlib")
    from df2net.detect import FaceDetector

    return FaceDetector(min_face_size=40)


def _found(faces, placed):
    hits = [any(face_photos.matches(f.centre, f.side, p) for f in faces) for p in placed]
    false = [f for f in faces if not any(face_photos.matches(f.centre, f.side, p) for p in placed)]
    return hits, false


@pytest.fixture(scope="module")
def collage(demo_faces):
    rng = np.random.default_rng(21)
    return face_photos.make_collage(demo_faces, rng, 1100, 760, face_widths=(40, 150), max_roll_deg=40, count=9)


def test_finds_small_and_rolled_faces_and_nothing_else(collage, small_face_detector):
    rgb, placed = collage
    assert len(placed) >= 7 and min(p.width for p in placed) < 70
    faces = small_face_detector.detect(rgb)
    hits, false = _found(faces, placed)
    assert sum(hits) >= 0.9 * len(placed), [(p.width, p.roll_deg) for p, h in zip(placed, hits) if not h]
    assert not false, [(f.centre, f.side, f.scores) for f in false]
    cfg = small_face_detector.cfg
    for f in faces:
        assert f.detector == "hog+cnn"
        if "cnn" in f.scores:  # HOG was unsure: the CNN decided
            assert f.score == f.scores["cnn"] >= cfg.verify_score
        else:  # HOG was sure enough to skip the CNN's look
            assert f.score == max(f.scores.values()) >= cfg.verify_below
    assert any("cnn" not in f.scores for f in faces)


def test_threaded_scan_finds_the_same_faces(collage, demo_faces, small_face_detector):
    """Strips of the photo scanned side by side, and the coarse scan for the faces past the strips'
    levels, find the faces the single scan does."""
    from dataclasses import replace

    from df2net.detect import FaceDetector

    threaded = FaceDetector(min_face_size=40, cfg=replace(small_face_detector.cfg, scan_threads=2))
    rgb, placed = collage
    hits, false = _found(threaded.detect(rgb), placed)
    assert sum(hits) >= 0.9 * len(placed) and not false
    face = next(f for f in demo_faces if f.name == "11.png")
    big, one = face_photos.single_face(face, np.random.default_rng(3), (1300, 900), 330.0, 10.0)
    found, single = threaded.detect(big), small_face_detector.detect(big)
    assert len(found) == len(single) == 1 and face_photos.matches(found[0].centre, found[0].side, one)
    assert 0.8 < found[0].side / single[0].side < 1.25


@pytest.mark.parametrize("kind", ["noise", "texture", "cartoon"])
def test_no_face_in_faceless_photos(kind, small_face_detector):
    rgb = getattr(face_photos, f"{kind}_image")(np.random.default_rng(5), 900, 640)
    assert len(small_face_detector.detect(rgb)) == 0


def test_astronaut_is_one_face_not_the_mission_patch(sample_photo, small_face_detector):
    from df2net.io import load_image

    faces = small_face_detector.detect(load_image(sample_photo).rgb)
    assert len(faces) == 1
    assert 70 < faces[0].side < 130 and faces[0].centre[1] < 256  # the head, not the patch below


@pytest.mark.parametrize("name", ["19.png", "22.png"])
def test_landmarks_hold_on_a_turned_and_rolled_face(name, demo_faces, small_face_detector):
    """A turned demo face rolled 35 degrees gets the landmarks of the upright face, turned with it."""
    face = next(f for f in demo_faces if f.name == name)
    rgb, placed = face_photos.single_face(face, np.random.default_rng(2), 420, 160.0, 35.0)
    truth = placed.landmarks  # the upright face's landmarks, turned with it
    found = small_face_detector.detect(rgb)
    assert len(found) == 1
    err = np.linalg.norm(found[0].landmarks - truth, axis=1).mean() / placed.width
    assert err < 0.03, err
    assert found[0].angle == pytest.approx(eye_angle(truth), abs=3)


def test_crop_of_a_rolled_face_is_level_and_maps_back(demo_images, small_face_detector):
    rgb = np.asarray(Image.fromarray(demo_images["2.png"]).rotate(-30.0, resample=Image.Resampling.BICUBIC))
    det = small_face_detector.detect(rgb)[0]
    assert det.angle == pytest.approx(30.0, abs=5)
    crop = crop_face(rgb, det)
    assert crop.angle == det.angle
    eyes = crop.landmarks[42:48].mean(0) - crop.landmarks[36:42].mean(0)
    assert abs(np.degrees(np.arctan2(eyes[1], eyes[0]))) < 0.5  # level in the crop
    np.testing.assert_allclose(crop.to_image(crop.landmarks), det.landmarks, atol=1e-3)
    assert crop.mask[crop.landmarks[30, 1].astype(int), crop.landmarks[30, 0].astype(int)]  # nose tip inside


def test_detector_names(demo_images):
    pytest.importorskip("dlib")
    from df2net.detect import DETECTORS, FaceDetector

    assert set(DETECTORS) == {"auto", "hog", "cnn"}
    with pytest.raises(ValueError, match="unknown detector"):
        FaceDetector(detector="haar")
    hog = FaceDetector(detector="hog").detect(demo_images["1.png"])
    assert len(hog) == 1 and hog[0].detector == "hog" and set(hog[0].scores) == {"hog"}


def test_metadata_records_the_detection_the_rotation_and_only_the_weights_name(random_weights, sample_photo, tmp_path):
    from df2net import Reconstructor
    from df2net.io import load_image

    rgb = load_image(sample_photo).rgb
    turned = np.asarray(Image.fromarray(rgb).rotate(-25.0, resample=Image.Resampling.BICUBIC))
    rec = Reconstructor(weights=random_weights, detector="auto", min_face_size=40)
    face = rec(turned, source="turned.png")[0]
    face.save(tmp_path / "f", {"metadata"})
    meta = json.loads((tmp_path / "f" / "metadata.json").read_text())
    assert meta["model"]["weights"] == random_weights.name and "/" not in meta["model"]["weights"]
    assert len(meta["model"]["sha256"]) == 64
    assert meta["detection"]["detector"] == "hog+cnn" and meta["detection"]["score"] >= 0.3
    assert meta["crop_rotation_deg"] == pytest.approx(25.0, abs=5)
    a = np.array(meta["crop_to_image"])
    lm_crop = np.array(meta["landmarks_crop"])
    np.testing.assert_allclose(np.c_[lm_crop, np.ones(68)] @ a.T, meta["landmarks_image"], atol=0.02)


def test_turn_share_reads_yaw_from_the_nose_between_the_eyes():
    from df2net.detect import turn_share

    lm = np.zeros((68, 2), np.float32)
    lm[36], lm[45] = (100.0, 200.0), (200.0, 200.0)  # outer eye corners
    lm[30] = (150.0, 260.0)  # nose tip in the middle: frontal
    assert turn_share(lm) == pytest.approx(0.5)
    lm[30] = (185.0, 260.0)  # turned: the nose tip near the far eye
    assert turn_share(lm) == pytest.approx(0.85)
    rot = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    assert turn_share(lm @ rot.T) == pytest.approx(0.85)  # roll does not change it
