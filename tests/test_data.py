"""Training / evaluation data: SFM loading and subdivision, fits of a real photo, synthetic faces.

Needs ``../shared/data`` (the Surrey Face Model and the demo photos) beside the repository and
eos; skipped where they are absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shared_data import DEMO, SFM_DIR, require_sfm

require_sfm()

from df2net.data.dataset import load_sample, read_manifest
from df2net.data.make import make_data, sample_rng
from df2net.data.sfm import load_sfm, loop_subdivision, model_subdivision

MANIFEST_KEYS = {"kind", "seed", "count", "crop_size", "df2net_version", "samples"}


@pytest.fixture(scope="module")
def model():
    return load_sfm(SFM_DIR)


@pytest.fixture(scope="module")
def fits_dir(tmp_path_factory):
    """Fits of one demo photo (also fills the texture cache used by the synthetic tests)."""
    out = tmp_path_factory.mktemp("fits")
    result = make_data("fits", [DEMO / "1.png"], out, seed=0, face_model="sfm", sfm_dir=SFM_DIR, progress=False)
    assert result.failed == [] and result.samples == ["000000"]
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory, fits_dir):
    """Two synthetic samples made twice with seed 3 and once with seed 4."""
    dirs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path_factory.mktemp(f"synth_{name}")
        r = make_data("synthetic", [], out, seed=seed, count=2, face_model="sfm", sfm_dir=SFM_DIR, texture_cache=fits_dir / "textures", progress=False)
        assert r.failed == [] and r.samples == ["000000", "000001"]
        dirs[name] = out
    return dirs


# ------------------------------------------------------------------------------------------
# Model and subdivision
# ------------------------------------------------------------------------------------------


def test_model_loads_with_landmarks(model):
    assert model.mean.shape == (3448, 3)
    assert model.shape_basis.shape == (3 * 3448, 63)
    assert model.expression_basis.shape == (3 * 3448, 6)
    assert model.landmark_vertices[31] == 114  # nose tip
    assert np.allclose(model.vertices(), model.mean)


def test_subdivision_is_affine_and_keeps_planes_planar():
    # A flat grid of triangles: Loop subdivision must keep it in its plane.
    n = 6
    ys, xs = np.mgrid[0:n, 0:n]
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], 1).astype(float)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, d], 1), np.stack([a, d, b], 1)])
    sub = loop_subdivision(faces, len(verts), levels=2)
    assert np.allclose(np.asarray(sub.matrix.sum(1)).ravel(), 1.0)
    plane = verts @ np.array([[1, 0, 0], [0, 1, 0], [0.3, -0.2, 1.0]]).T  # z = 0.3 x - 0.2 y
    fine = sub.apply(plane)
    assert np.allclose(fine[:, 2], 0.3 * fine[:, 0] - 0.2 * fine[:, 1])
    assert len(sub.faces) == 16 * len(faces)


def test_model_subdivision_is_cached(model):
    assert model_subdivision(model, 1) is model_subdivision(model, 1)


def test_warp_to_crop_matches_crop_frame():
    from df2net.data.maps import warp_to_crop
    from df2net.face import image_to_crop

    h, w = 300, 400
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = np.stack([uu, vv], -1)
    box = (50.3, 20.7, 240.0)
    warped, valid = warp_to_crop(coords, box, 64, mode="bilinear")
    crop = image_to_crop(warped[valid], box, 64)
    rows, cols = np.nonzero(valid)
    assert valid.all()
    assert np.allclose(crop[:, 0], cols, atol=1e-3) and np.allclose(crop[:, 1], rows, atol=1e-3)


def test_sample_rng_is_per_index():
    a = sample_rng(7, 3).uniform(size=4)
    assert np.array_equal(a, sample_rng(7, 3).uniform(size=4))
    assert not np.array_equal(a, sample_rng(7, 4).uniform(size=4))
    assert not np.array_equal(a, sample_rng(8, 3).uniform(size=4))


# ------------------------------------------------------------------------------------------
# Fits of a real photo
# ------------------------------------------------------------------------------------------


def test_fit_of_demo_photo_has_nose_nearest(fits_dir, model):
    s = load_sample(fits_dir / "000000")
    depth, mask, lm = s["depth"], s["mask"], s["landmarks"]
    assert depth.shape == (512, 512) and depth.dtype == np.float32
    assert s["image"].shape == (512, 512, 3)
    assert 0.2 < mask.mean() < 0.6

    def at(p):
        u, v = np.rint(p).astype(int)
        assert mask[v, u]
        return float(depth[v, u])

    nose = at(lm[30])  # landmark 31 (1-based): the nose tip
    for corner in (36, 39, 42, 45):  # eye corners
        assert nose > at(lm[corner]) + 10.0  # crop pixels: some 10 mm and more
    # Normals agree with the depth, face the viewer.
    from df2net.geometry import depth_to_normals

    n = depth_to_normals(depth, depth != 0)
    assert np.abs(n - s["normals"])[mask].max() < 2e-3
    assert (s["normals"][mask][:, 2] > 0).all()
    p = s["params"]
    assert p["kind"] == "fits" and 1.0 < p["px_per_mm"] < 3.0 and len(p["shape_coeffs"]) == 63


def test_fits_manifest_and_texture_cache(fits_dir):
    man = read_manifest(fits_dir)
    assert MANIFEST_KEYS <= set(man)
    assert man["kind"] == "fits" and man["count"] == 1 and man["crop_size"] == 512
    assert man["samples"] == ["000000"]
    assert (fits_dir / "contact_sheet.png").is_file()
    textures = list((fits_dir / "textures").glob("*.png"))
    assert any(not p.name.endswith(".bg.png") for p in textures)


# ------------------------------------------------------------------------------------------
# Synthetic faces
# ------------------------------------------------------------------------------------------

ARRAYS = ("image", "mask", "depth", "depth_base", "normals", "detail_mask")


def test_synthetic_is_deterministic(synth):
    for name in ("000000", "000001"):
        a, b, c = (load_sample(synth[k] / name) for k in ("a", "b", "c"))
        for key in ARRAYS:
            assert np.array_equal(a[key], b[key]), key
        assert not np.array_equal(a["depth"], c["depth"])
        assert not np.array_equal(a["image"], c["image"])
    a0, a1 = load_sample(synth["a"] / "000000"), load_sample(synth["a"] / "000001")
    assert not np.array_equal(a0["image"], a1["image"])


def test_synthetic_resume_skips_complete(synth, fits_dir):
    r = make_data("synthetic", [], synth["a"], seed=3, count=2, face_model="sfm", sfm_dir=SFM_DIR, texture_cache=fits_dir / "textures", progress=False)
    assert r.skipped == 2 and r.written == 0


def test_synthetic_depth_normals_mask_agree(synth):
    from scipy import ndimage

    from df2net.geometry import depth_to_normals

    for name in ("000000", "000001"):
        s = load_sample(synth["a"] / name)
        depth, mask = s["depth"], s["mask"]
        assert depth.dtype == np.float32 and s["normals"].shape == (512, 512, 3)
        assert mask.sum() > 5000 and (depth[mask] != 0).all()
        assert (depth[~ndimage.binary_dilation(depth != 0)] == 0).all()
        n = depth_to_normals(depth, depth != 0)
        inner = ndimage.binary_erosion(mask, iterations=1)
        assert np.abs(n - s["normals"])[inner].max() < 2e-3
        assert np.allclose(np.linalg.norm(s["normals"][mask], axis=-1), 1.0, atol=2e-3)
        assert np.median(s["normals"][mask][:, 2]) > 0.5
        # The detected landmarks lie on the face.
        lm = np.rint(s["landmarks"]).astype(int)
        assert mask[lm[27:48, 1], lm[27:48, 0]].mean() > 0.8


def test_synthetic_detail_only_in_detail_mask(synth):
    for name in ("000000", "000001"):
        s = load_sample(synth["a"] / name)
        diff = s["depth"] - s["depth_base"]
        dm = s["detail_mask"]
        assert dm.sum() > 500
        assert (diff[dm] != 0).all()
        assert (diff[~dm] == 0).all()
        assert diff.min() < -0.3  # wrinkles at least a third of a pixel deep somewhere
        p = s["params"]
        assert 1.0 < p["px_per_mm"] < 3.0
        assert p["detail"]["strokes"] and p["pose_attempts"][-1]["result"] == "ok"


def test_synthetic_manifest(synth):
    man = read_manifest(synth["a"])
    assert MANIFEST_KEYS <= set(man)
    assert man["kind"] == "synthetic" and man["seed"] == 3 and man["count"] == 2
    assert man["samples"] == ["000000", "000001"]
    lm = json.loads((synth["a"] / "000000" / "landmarks.json").read_text())
    assert np.asarray(lm["crop"]).shape == (68, 2)
    assert (synth["a"] / "contact_sheet.png").is_file()


# ------------------------------------------------------------------------------------------
# df2net evaluate on a generated set
# ------------------------------------------------------------------------------------------


def test_evaluate_writes_one_row_per_method_and_the_figure(synth, random_weights, tmp_path, capsys):
    import json

    from df2net.cli import main
    from df2net.evaluate import iter_samples, score_sample
    from df2net.data.eval_sample import load_sample as load_eval_sample

    out = tmp_path / "eval"
    code = main(["evaluate", str(synth["a"]), "--weights", str(random_weights), "--sfm-dir", str(SFM_DIR),
                 "-o", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    rows = {r["method"]: r for r in json.loads((out / "table.json").read_text())}
    assert set(rows) == {"3DMM mean face", "3DMM landmark fit", "ICT landmark fit", "df2net D", "df2net D+F", "df2net D+F+Fr"}
    for row in rows.values():
        assert row["samples"] == 2 and np.isfinite(row["depth_mae_px"]) and np.isfinite(row["normal_deg"])
        assert np.isfinite(row["depth_mae_mm"]) and np.isfinite(row["normal_detail_deg"])
    # The 3DMM baselines are sane: a few percent of the face's depth range, not a random surface.
    assert rows["3DMM landmark fit"]["depth_pct_range"] < 15
    assert rows["ICT landmark fit"]["depth_pct_range"] < 15
    assert "3DMM landmark fit" in table
    assert (out / "figure.png").stat().st_size > 10_000 and (out / "table.csv").is_file()
    # The truth scores (near) zero against itself.
    sample = load_eval_sample(iter_samples(synth["a"])[0])
    perfect = score_sample(sample.depth, sample)
    assert perfect.depth_mae_px < 1e-3 and perfect.normal_deg < 1.0


def test_synthetic_detail_gain_scales_the_relief_and_plain_skin_lowpasses_the_texture(synth, fits_dir, tmp_path):
    from df2net.data.synthetic import SyntheticConfig

    def one(out: Path, cfg: SyntheticConfig) -> dict:
        r = make_data("synthetic", [], out, seed=3, count=1, face_model="sfm", sfm_dir=SFM_DIR, texture_cache=fits_dir / "textures", config=cfg, progress=False)
        assert r.failed == []
        return load_sample(out / "000000")

    base = load_sample(synth["a"] / "000000")
    deeper = one(tmp_path / "gain", SyntheticConfig(detail_gain=2.0))
    assert deeper["params"]["crop_box"] == base["params"]["crop_box"]  # same face, same crop
    assert np.array_equal(deeper["depth_base"], base["depth_base"])
    d1, d2 = base["depth"] - base["depth_base"], deeper["depth"] - deeper["depth_base"]
    assert np.allclose(d2, 2.0 * d1, atol=1e-3) and d1.min() < -0.3
    assert "plain_skin_sigma_texels" not in base["params"]["texture"]
    plain = one(tmp_path / "plain", SyntheticConfig(plain_skin_prob=1.0))
    sigma = plain["params"]["texture"]["plain_skin_sigma_texels"]
    assert 2.0 < sigma < 10.0  # 2 mm at the 512-texel texture
    assert plain["params"]["config"]["plain_skin_prob"] == 1.0


# ------------------------------------------------------------------------------------------
# Albedo-only marks
# ------------------------------------------------------------------------------------------


def test_marks_layer_is_colour_only_and_off_the_features(model):
    from df2net.data.marks import MarksConfig, random_marks
    from df2net.data.uv import feature_mask_uv, uv_raster

    cfg = MarksConfig(prob=1.0, freckles_prob=1.0, moles_prob=1.0, pencil_prob=1.0, brow_hairs_prob=0.0)
    layer = random_marks(np.random.default_rng(5), model, 512, cfg)
    again = random_marks(np.random.default_rng(5), model, 512, cfg)
    assert np.array_equal(layer.factor, again.factor)  # deterministic per seed
    assert layer.factor.shape == (512, 512, 3) and layer.marked.any()
    assert {"freckles", "moles", "pencil_lines"} <= set(layer.kinds)
    cover = uv_raster(model, 512).mask
    assert np.all(layer.factor[~cover] == 1.0)  # nothing off the face
    # Marks darken: under them the factor is well below 1 on average, and none lands on the eyes
    # or lips (their margins), where they would pass for the features themselves.
    assert layer.factor[layer.marked].mean() < 0.85
    eyes_lips = feature_mask_uv(model, 512)
    assert (layer.marked & eyes_lips).sum() <= 0.02 * layer.marked.sum()


def test_synthetic_marks_change_colour_only_where_the_mask_says(fits_dir, tmp_path):
    from scipy.ndimage import binary_dilation

    r = make_data(
        "synthetic",
        [],
        tmp_path,
        seed=11,
        count=1,
        face_model="sfm",
        sfm_dir=SFM_DIR,
        texture_cache=fits_dir / "textures",
        progress=False,
        config=__import__("df2net.data.synthetic", fromlist=["SyntheticConfig"]).SyntheticConfig(
            marks=__import__("df2net.data.marks", fromlist=["MarksConfig"]).MarksConfig(prob=1.0, pencil_prob=1.0, moles_prob=1.0),
            plain_skin_prob=1.0,
            strong_light_prob=1.0,
            fold_gain=1.7,
        ),
    )
    assert r.failed == []
    s = load_sample(tmp_path / "000000")
    assert "marks_mask" in s and "image_unmarked" in s and s["marks_mask"].any()
    diff = np.abs(s["image"].astype(int) - s["image_unmarked"].astype(int)).max(-1)
    changed = diff > 10
    assert changed.sum() > 20
    near = binary_dilation(s["marks_mask"], iterations=8)  # camera blur and JPEG blocks spread a mark
    assert (changed & ~near).sum() <= 0.02 * changed.sum() + 5
    assert json.loads((tmp_path / "000000" / "params.json").read_text())["marks"]["counts"]
