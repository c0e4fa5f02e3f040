"""The relief Fr-Net: its high-pass operators, the network, the chain it sits in, and its training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from df2net.model import MODEL_CONFIGS, build_model
from df2net.model.relief import FEATURE_NAMES, ReliefNet, band_gate, feature_mask, highpass, input_mask, lowpass, relief_features, warm_start

RELIEF_CFG = replace(MODEL_CONFIGS["cpu"], name="cpu", finer_arch="relief", relief_channels=(4, 8, 8), depth_scale=255.0, depth_offset=255.0)


def test_lowpass_matches_a_gaussian_of_the_same_sigma():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    x = gaussian_filter(rng.normal(size=(128, 128)), 3.0)
    ours = lowpass(torch.from_numpy(x).float()[None, None], 4.0)[0, 0].numpy()
    ref = gaussian_filter(x, 4.0, mode="constant")
    inner = (slice(16, -16), slice(16, -16))
    # Pooled on a 4x coarser grid: close to the Gaussian, not equal (a closer or wider sigma fits worse).
    assert np.corrcoef(ours[inner].ravel(), ref[inner].ravel())[0, 1] > 0.995
    assert np.abs(ours - ref)[inner].max() < 0.12 * np.abs(ref[inner]).max()
    assert np.abs(ours - ref)[inner].max() < np.abs(ours - gaussian_filter(x, 5.0, mode="constant"))[inner].max()


def test_highpass_removes_smooth_shape_and_keeps_a_groove():
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    plane = 0.3 * xx + 0.1 * yy
    groove = -0.5 * torch.exp(-0.5 * ((xx - 64) / 1.0) ** 2)
    mask = torch.ones(1, 1, 128, 128)
    hp_plane = highpass(plane[None, None], mask, 4.0)[0, 0]
    hp_both = highpass((plane + groove)[None, None], mask, 4.0)[0, 0]
    inner = (slice(20, -20), slice(20, -20))
    assert hp_plane[inner].abs().max() < 0.02
    assert hp_both[inner][:, 44].min() < -0.3  # the groove (column 64 of the full grid) survives


def test_relief_features_of_a_plain_tilted_face():
    x = torch.full((1, 3, 64, 64), -1.0)
    x[..., 8:56, 8:56] = 0.2  # a flat grey face on the black (masked-out) background
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    fine = (0.5 * xx)[None, None]
    f = relief_features(x, fine, 4.0)
    assert f.shape == (1, 7, 64, 64)
    inner = (0, slice(None), slice(20, 44), slice(20, 44))
    assert f[inner][3].abs().max() < 1e-3  # no luminance detail
    assert f[inner][4].abs().max() < 1e-2  # no depth detail in a plane
    assert torch.allclose(f[inner][5], torch.full((24, 24), 0.5), atol=1e-2)  # x slope
    assert f[inner][6].abs().max() < 1e-2
    assert torch.equal(input_mask(x)[0, 0, 8:56, 8:56], torch.ones(48, 48))


def test_relief_net_output_is_detail_only_and_trains():
    torch.manual_seed(0)
    net = ReliefNet((4, 8, 8), 4.0)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    fine = torch.rand(2, 1, 64, 64) * 50
    out = net(fine, x)
    assert out.shape == (2, 1, 64, 64)
    # High-passed: its own low-pass is about zero.
    assert lowpass(out, 4.0)[..., 16:-16, 16:-16].abs().max() < 0.2 * out.abs().max() + 1e-6
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_detail()  # no relief; the gate keeps half of F-Net's own detail band
    hp_fine = relief_features(x, fine, 4.0)[:, 4:5]
    assert torch.allclose(net(fine, x), -0.5 * hp_fine, atol=1e-5)


def _face_input(size: int = 96) -> torch.Tensor:
    x = torch.full((1, 3, size, size), -1.0)
    x[..., 8 : size - 8, 8 : size - 8] = 0.2  # a flat grey face on the black (masked-out) background
    return x


def test_band_features_curvature_is_the_high_pass_of_a_smooth_dome():
    # For a smooth surface hp = x - blur(x) = -(sigma^2 / 2) lap(x): a paraboloid's high-pass is
    # constant, and the curvature channel must say so without seeing the detail band.
    x = _face_input()
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    dome = (-0.003 * ((xx - 48) ** 2 + (yy - 48) ** 2))[None, None]  # hp 0.1 px: smooth skin
    f = relief_features(x, dome, 4.0, "band")
    assert f.shape == (1, len(FEATURE_NAMES["band"]), 96, 96)
    names = FEATURE_NAMES["band"]
    inner = (0, slice(None), slice(32, 64), slice(32, 64))
    curvature, hp_fine = f[inner][names.index("curvature")], f[inner][names.index("hp_fine")]
    assert torch.allclose(curvature, torch.full_like(curvature, 0.003 * 2 * 16.0), atol=0.005)
    assert torch.allclose(hp_fine, curvature, atol=0.02)  # the pooled low-pass: within 15 %
    assert f[inner][names.index("gate_k")].abs().max() == 0  # smooth: F-Net's band is dropped


@pytest.mark.parametrize("mode", ["gate", "band"])
def test_the_features_know_the_face_mask(mode):
    # Training crops patches of cached features and must high-pass inside the same face mask
    # as inference does from the crop itself.
    x = _face_input()
    x[..., 40:44, 40:44] = -1.0 + 2.0 / 255  # the darkest face colour is still the face
    f = relief_features(x, torch.zeros(1, 1, 96, 96), 4.0, mode)
    assert torch.equal(feature_mask(f), input_mask(x))
    assert feature_mask(f)[0, 0, 40:44, 40:44].min() == 1 and feature_mask(f)[0, 0, :8].max() == 0


def test_band_gate_opens_on_structure_only():
    x = _face_input()
    mask = input_mask(x)
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    ridge = (3.0 * torch.exp(-0.5 * ((xx - 60) / 2.0) ** 2))[None, None]  # a nose-like ridge, 3 px
    ripple = (0.05 * torch.sin(xx / 1.5))[None, None]  # skin-texture-like detail, 0.05 px
    k_ridge = band_gate(highpass(ridge, mask, 4.0), mask, 4.0)[0, 0]
    k_ripple = band_gate(highpass(ripple, mask, 4.0), mask, 4.0)[0, 0]
    assert k_ridge[40:56, 58:62].min() > 0.99
    assert k_ridge[40:56, 16:30].max() == 0  # far from the ridge
    assert k_ripple[16:80, 16:80].max() == 0


def test_band_net_starts_by_dropping_the_fine_band_on_smooth_skin_and_trains():
    torch.manual_seed(0)
    net = ReliefNet((4, 8, 8), 4.0, mode="band")
    x = _face_input(64)
    fine = torch.rand(1, 1, 64, 64) * 0.3  # F-Net's texture: no structure
    net.zero_detail()
    f = net.features(fine, x)
    hp_fine = f[:, FEATURE_NAMES['band'].index('hp_fine')][:, None]
    assert torch.allclose(net(fine, x), -hp_fine * input_mask(x), atol=1e-6)  # finer = low-pass of fine
    out = net(fine, torch.rand(1, 3, 64, 64) * 2 - 1)
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_warm_start_matches_input_channels_by_name():
    torch.manual_seed(0)
    donor = ReliefNet((4, 8, 8), 4.0, mode="gate")
    net = ReliefNet((4, 8, 8), 4.0, mode="band")
    net.zero_detail()
    copied = warm_start(net, donor.state_dict(), "gate")
    assert copied == len(donor.state_dict())
    w_old, w_new = donor.down[0][0].weight, net.down[0][0].weight
    old, new = FEATURE_NAMES["gate"], FEATURE_NAMES["band"]
    for name in ("red", "hp_log_lum", "slope_x", "slope_y"):
        assert torch.equal(w_new[:, new.index(name)], w_old[:, old.index(name)])
    for name in ("curvature", "gate_k"):
        assert w_new[:, new.index(name)].abs().max() == 0
    assert torch.equal(net.head.weight, donor.head.weight[:1]) and torch.equal(net.down[1][0].weight, donor.down[1][0].weight)


def test_band_chain_round_trips(tmp_path):
    from df2net.model.weights import load_weights, save_weights

    cfg = replace(RELIEF_CFG, relief_mode="band")
    model = build_model(cfg).eval()
    assert model.FrNet.mode == "band"
    path = save_weights(model, cfg, tmp_path / "w.safetensors")
    loaded = load_weights(path)
    assert loaded.config.relief_mode == "band" and loaded.model.FrNet.mode == "band"
    with pytest.raises(ValueError, match="relief_mode"):
        replace(RELIEF_CFG, relief_mode="nope")


def test_chain_adds_the_relief_to_the_fine_depth_and_round_trips(tmp_path):
    from df2net.model.weights import load_weights, save_weights

    torch.manual_seed(1)
    model = build_model(RELIEF_CFG).eval()
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.inference_mode():
        stages = model.forward_stages(x)
        relief = model.FrNet(stages.fine * RELIEF_CFG.depth_scale, x)
    assert torch.allclose(stages.finer, stages.fine + relief / RELIEF_CFG.depth_scale, atol=1e-6)
    path = save_weights(model, RELIEF_CFG, tmp_path / "w.safetensors")
    loaded = load_weights(path)
    assert loaded.config.finer_arch == "relief" and loaded.config.relief_channels == (4, 8, 8)
    with torch.inference_mode():
        again = loaded.model.forward_stages(x)
    assert torch.allclose(again.finer, stages.finer, atol=1e-6)


def test_relief_config_is_checked():
    with pytest.raises(ValueError, match="finer_base"):
        replace(RELIEF_CFG, finer_base="dense")
    with pytest.raises(ValueError, match="finer_arch"):
        replace(RELIEF_CFG, finer_arch="nope")


def _fake_sample(folder: Path, rng: np.random.Generator, marks: bool) -> None:
    """A render-like sample: a dome with one groove, its colour shaded from the true normals."""
    import json

    from PIL import Image

    from df2net.geometry import depth_to_normals

    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    mask = (xx - 256) ** 2 / 180**2 + (yy - 256) ** 2 / 220**2 < 1
    base = np.where(mask, 150 * np.sqrt(np.clip(1 - (xx - 256) ** 2 / 200**2 - (yy - 256) ** 2 / 240**2, 0, 1)), 0).astype(np.float32)
    groove = np.where(mask, -0.6 * np.exp(-0.5 * ((yy - 200 - rng.uniform(-20, 20)) / 1.2) ** 2), 0).astype(np.float32)
    depth = base + groove
    n = depth_to_normals(depth, mask)
    shade = np.clip(0.3 + 0.7 * (n @ np.array([0.5, 0.3, 0.8]) / np.linalg.norm([0.5, 0.3, 0.8])), 0, 1)
    img = (np.repeat(shade[..., None], 3, 2) * np.array([220, 170, 140]) * mask[..., None]).astype(np.uint8)
    Image.fromarray(img).save(folder / "image.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "mask.png")
    np.save(folder / "depth.npy", depth)
    np.save(folder / "depth_base.npy", base)
    np.save(folder / "normals.npy", n.astype(np.float16))
    Image.fromarray((groove < -0.01).astype(np.uint8) * 255).save(folder / "detail_mask.png")
    (folder / "landmarks.json").write_text(json.dumps({"crop": np.zeros((68, 2)).tolist()}))
    (folder / "params.json").write_text(json.dumps({"kind": "synthetic", "px_per_mm": 2.0}))
    if marks:
        marked = img.copy()
        dots = ((xx - 300) ** 2 + (yy - 320) ** 2 < 36) & mask
        marked[dots] = (marked[dots] * 0.4).astype(np.uint8)
        Image.fromarray(marked).save(folder / "image.png")
        Image.fromarray(img).save(folder / "image_unmarked.png")
        Image.fromarray(dots.astype(np.uint8) * 255).save(folder / "marks_mask.png")


def test_train_relief_runs_resumes_and_ships_a_loadable_chain(tmp_path, random_weights):
    from df2net.model.weights import load_model
    from df2net.train.relief import ReliefTrainConfig, train_relief

    rng = np.random.default_rng(0)
    for i in range(3):
        _fake_sample(tmp_path / "data" / f"{i:06d}", rng, marks=i != 0)
    _fake_sample(tmp_path / "val" / "000000", rng, marks=True)
    cfg = ReliefTrainConfig(
        data=[str(tmp_path / "data")],
        out=str(tmp_path / "run"),
        init=str(random_weights),
        val=str(tmp_path / "val"),
        channels=(4, 8, 8),
        steps=6,
        batch_size=2,
        patch_size=64,
        checkpoint_every=3,
        log_every=3,
        val_every=3,
        threads=1,
    )
    path = train_relief(cfg, progress=False)
    history = __import__("json").loads((tmp_path / "run" / "history.json").read_text())
    assert [h["step"] for h in history] == [3, 6]
    assert "false_relief_um" in history[-1] and np.isfinite(history[-1]["relief_r"])
    loaded = load_model(path)
    assert loaded.config.finer_arch == "relief"
    # Resume: the checkpoint's step count carries on to the new total.
    path2 = train_relief(replace(cfg, steps=9), resume=True, progress=False)
    history = __import__("json").loads((tmp_path / "run" / "history.json").read_text())
    assert [h["step"] for h in history] == [3, 6, 9] and path2 == path


def test_band_run_trains_and_its_gain_scan_ships_the_chosen_gain(tmp_path, random_weights):
    import json

    from df2net.model.weights import load_model
    from df2net.train.relief import ReliefTrainConfig, scan_gain, train_relief

    rng = np.random.default_rng(1)
    for i in range(2):
        _fake_sample(tmp_path / "data" / f"{i:06d}", rng, marks=True)
    _fake_sample(tmp_path / "val" / "000000", rng, marks=True)
    cfg = ReliefTrainConfig(
        data=[str(tmp_path / "data")], out=str(tmp_path / "run"), init=str(random_weights), val=str(tmp_path / "val"),
        mode="band", channels=(4, 8, 8), steps=3, batch_size=2, patch_size=64, log_every=3, val_every=3, threads=1,
        pair_weight=1.0, pair_share=1.0,
    )
    path = train_relief(cfg, progress=False)
    assert load_model(path).config.relief_mode == "band"
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    # Both fake samples are marked, so every batch is one pair and the term is logged (its value
    # here is 0: the network starts at no relief and the random F-Net's band is gated off).
    assert np.isfinite(history[-1]["pair_mse"])
    out = scan_gain(tmp_path / "run", (0.5, 2.0), max_false_um=float("inf"))
    report = json.loads((tmp_path / "run" / "gain_calibration.json").read_text())
    assert [r["gain"] for r in report["rows"]] == [0.5, 2.0] and report["chosen"] in (0.5, 2.0)
    shipped = load_model(out)
    assert shipped.config.relief_gain == report["chosen"] and shipped.model.FrNet.gain == report["chosen"]

    # Bounded by a reference file on other renders: the run's own network at gain 1 is the
    # reference, so the scan's gain-1 row scores exactly what the reference does and is allowed.
    _fake_sample(tmp_path / "val2" / "000000", rng, marks=True)
    scan_gain(tmp_path / "run", (0.5, 1.0, 2.0), max_false_um=float("inf"), val=[str(tmp_path / "val2")], reference=path)
    report = json.loads((tmp_path / "run" / "gain_calibration.json").read_text())
    ref, rows = report["reference"], {r["gain"]: r for r in report["rows"]}
    assert report["val"] == [str(tmp_path / "val2")] and report["bound_on"] == "false_relief_um_mean"
    assert report["max_false_um"] == ref["false_relief_um_mean"]
    assert rows[1.0]["false_relief_um_mean"] == pytest.approx(ref["false_relief_um_mean"], rel=1e-6)
    assert rows[report["chosen"]]["false_relief_um_mean"] <= report["max_false_um"]
    with pytest.raises(ValueError, match="not a relief network"):
        scan_gain(tmp_path / "run", (1.0,), max_false_um=float("inf"), reference=random_weights)


def _paired_items(marked_hp: float) -> list:
    """A marked and an unmarked version of one fake 'band' image: the marks darken a square of
    the colour and (by ``marked_hp``) raise F-Net's detail band there."""
    import torch

    from df2net.model.relief import FEATURE_CHANNELS, HP_FINE_CHANNEL
    from df2net.train.relief import _Item

    g = torch.Generator().manual_seed(0)
    feats = torch.rand(FEATURE_CHANNELS["band"], 96, 96, generator=g) * 0.5 + 0.2
    marks = torch.zeros(96, 96)
    marks[40:56, 40:56] = 1.0
    marked = feats.clone()
    marked[:3] -= 0.3 * marks
    marked[HP_FINE_CHANNEL["band"]] += marked_hp * marks
    target = torch.randn(96, 96, generator=g) * 0.1
    weight = torch.ones(96, 96)
    box = (0, 96, 0, 96)
    unmarked_item = _Item(feats.half(), target.half(), weight.half(), box)
    marked_item = _Item(marked.half(), target.half(), weight.half(), box, twin=unmarked_item, marks=marks.half())
    return [marked_item, unmarked_item]


def test_paired_batches_hold_the_same_patch_with_and_without_the_marks():
    import torch

    from df2net.train.relief import ReliefTrainConfig, _batch, pair_loss

    items = _paired_items(marked_hp=0.2)
    cfg = ReliefTrainConfig(data=[], out="", mode="band", batch_size=6, patch_size=64, pair_weight=1.0, pair_share=0.67)
    batch = _batch(items, cfg, np.random.default_rng(0))
    assert batch.features.shape[0] == 6 and len(batch.pairs) == 2 and batch.marks.shape == (2, 1, 64, 64)
    for (a, b), marks in zip(batch.pairs, batch.marks):
        assert torch.equal(batch.target[a], batch.target[b])  # the same surface, flip and patch
        differs = (batch.features[a, :3] != batch.features[b, :3]).any(0)
        assert differs.any() and not (differs & (marks[0] == 0)).any()  # the colour differs only under the marks
    # The finer band of each pair differs by F-Net's 0.2 px under the marks; a network output that
    # cancels it there makes the term 0, one that ignores it leaves 0.2 px² squared.
    from df2net.model.relief import HP_FINE_CHANNEL

    c = HP_FINE_CHANNEL["band"]
    hp = batch.features[:, c : c + 1]
    pred = torch.zeros_like(hp, requires_grad=True)
    loss = pair_loss(pred, hp, batch)
    assert loss.item() == pytest.approx(0.04, rel=0.05)
    loss.backward()
    assert pred.grad.abs().sum() > 0
    cancel = torch.zeros_like(hp)
    for (a, b), marks in zip(batch.pairs, batch.marks):
        cancel[a] = -(hp[a] - hp[b]) * marks
    assert pair_loss(cancel, hp, batch).item() == pytest.approx(0.0, abs=1e-6)


def test_without_pair_weight_batches_are_independent_patches():
    from df2net.train.relief import ReliefTrainConfig, _batch

    cfg = ReliefTrainConfig(data=[], out="", mode="band", batch_size=4, patch_size=64)
    batch = _batch(_paired_items(0.0), cfg, np.random.default_rng(0))
    assert batch.features.shape[0] == 4 and batch.pairs == [] and batch.marks is None


def _lit_sphere(size: int = 96, light_dir=(0.6, 0.3, 0.74)) -> tuple[torch.Tensor, torch.Tensor]:
    """A Lambertian sphere of albedo 0.6 under one SH light: the masked crop and its depth (px)."""
    from df2net.shading import directional_sh, shade

    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    c, radius = (size - 1) / 2, size * 0.45
    r2 = (xx - c) ** 2 + (yy - c) ** 2
    inside = r2 < (0.92 * radius) ** 2
    z = torch.sqrt((radius**2 - r2).clamp_min(0.0))
    n = torch.stack([(xx - c) / radius, -(yy - c) / radius, z / radius], dim=-1)
    light = torch.from_numpy(directional_sh(np.array(light_dir), 1.0)).float() + torch.tensor([0.3] + [0.0] * 8)
    lum = (0.6 * shade(n, light)).clamp(0.0, 1.0)
    srgb = lum.pow(1 / 2.2)
    x = torch.where(inside, srgb * 2 - 1, torch.full_like(srgb, -1.0))[None, None].expand(1, 3, -1, -1).contiguous()
    return x, (z * inside)[None, None]


def test_shade_features_explain_the_shading_of_the_true_surface_only():
    x, depth = _lit_sphere()
    names = FEATURE_NAMES["shade"]
    f = relief_features(x, depth, 4.0, "shade")
    assert f.shape == (1, len(names), 96, 96)
    inner = (0, slice(None), slice(30, 66), slice(30, 66))
    lum, shd = f[inner][names.index("hp_log_lum")].ravel(), f[inner][names.index("hp_log_shade")].ravel()
    # The light fitted to the true sphere makes the image's own shading band.
    assert torch.corrcoef(torch.stack([lum, shd]))[0, 1] > 0.95
    # A wrong surface (a tilted plane) makes none of it.
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    wrong = relief_features(x, (0.3 * xx)[None, None], 4.0, "shade")[inner][names.index("hp_log_shade")]
    assert wrong.abs().max() < 0.1 * shd.abs().max()
    # Light from the right (+X): turning the surface to the right (dz/du < 0) brightens it.
    dx, dy = f[inner][names.index("log_shade_dx")], f[inner][names.index("log_shade_dy")]
    assert dx.median() < -0.2 and dy.median() < 0.0 and dx.median() < dy.median()


def test_shade_net_sees_its_features_mirrors_and_warm_starts_from_gate():
    from df2net.model.relief import LOG_CHANNELS, MIRROR_SIGN_CHANNELS, NETWORK_CHANNELS

    names = FEATURE_NAMES["shade"]
    assert [names[i] for i in MIRROR_SIGN_CHANNELS["shade"]] == ["slope_x", "log_shade_dx"]
    assert {names[i] for i in LOG_CHANNELS["shade"]} == {"hp_log_lum", "hp_log_shade", "log_shade_dx", "log_shade_dy", "hp_log_rg", "hp_log_bg"}
    torch.manual_seed(0)
    donor = ReliefNet((4, 8, 8), 4.0, mode="gate")
    net = ReliefNet((4, 8, 8), 4.0, mode="shade")
    assert net.down[0][0].weight.shape[1] == NETWORK_CHANNELS["shade"] == len(names)
    assert warm_start(net, donor.state_dict(), "gate") == len(donor.state_dict())
    x, depth = _lit_sphere(64)
    assert net.down[0][0].weight[:, len(FEATURE_NAMES["gate"]) :].abs().max() == 0  # new channels start silent
    with torch.no_grad():
        assert torch.allclose(net(depth, x), donor(depth, x), atol=1e-5)


def test_shade_features_export_to_onnx_and_match_torch():
    # The light fit inside the features must export too (ONNX has no linear solver: solve_spd).
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    from df2net.onnx_export import export_module

    class Features(torch.nn.Module):
        def forward(self, x: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
            return relief_features(x, depth, 4.0, "shade")

    x, depth = _lit_sphere(96)
    with torch.no_grad():
        want = Features()(x, depth)
    session = ort.InferenceSession(export_module(Features(), (x, depth), ["x", "depth"], ["features"]))
    got = session.run(None, {"x": x.numpy(), "depth": depth.numpy()})[0]
    scale = want.abs().amax(dim=(0, 2, 3)).clamp_min(1e-3).numpy()[None, :, None, None]
    assert np.abs(got - want.numpy()).max(axis=(0, 2, 3)).max() < 1e-3 * scale.max()
    assert (np.abs(got - want.numpy()) / scale).max() < 1e-3


def test_warm_start_into_a_deeper_net_keeps_the_donors_levels():
    torch.manual_seed(0)
    donor = ReliefNet((4, 8, 8), 4.0, mode="shade")
    with torch.no_grad():
        for p in donor.parameters():
            p.normal_(0.0, 0.3)
    net = ReliefNet((4, 8, 8, 12), 4.0, mode="shade")
    warm_start(net, donor.state_dict(), "shade")
    assert torch.equal(net.down[2][0].weight, donor.down[2][0].weight)
    assert torch.equal(net.up[1][0].weight, donor.up[0][0].weight) and torch.equal(net.up[2][0].weight, donor.up[1][0].weight)
    deep_inputs = net.up[0][0].weight[:, :12]
    assert deep_inputs.abs().max() == 0  # the new level starts silent
    x, depth = _lit_sphere(64)
    with torch.no_grad():
        a, b = donor(depth, x), net(depth, x)
    # The pass-through is exact where the bottleneck is positive; the extra LeakyReLU shrinks the rest.
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.95
    assert not torch.allclose(a, torch.zeros_like(a))
