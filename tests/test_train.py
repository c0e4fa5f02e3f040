"""Training: config, data mixing, augmentation consistency, losses, the three stages, resume, DDP, CLI.

Everything runs on small generated dataset folders in the ``make-data`` format: an ellipsoid
"face" with a nose and sinusoidal forehead wrinkles, shaded under random SH light. The network is
a tiny configuration (D-Net width 4, 256 x 256), so the whole file stays fast on two cores.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from df2net.config import CROP_SIZE
from df2net.geometry import depth_to_normals, depth_to_normals_torch
from df2net.shading import directional_sh, shade
from df2net.train import augment as aug
from df2net.train.config import AugmentConfig, DataSource, LossConfig, TrainConfig
from df2net.train.datasets import FaceFolder, MixedBatchSampler, TrainingSet, allocate
from df2net.train.losses import (
    crop_pixels_to_units,
    depth_l1,
    erode,
    gradient_l1,
    normal_loss,
    shading_loss,
    stage_loss,
)

TINY = {
    "name": "tiny",
    "dense_channels": 4,
    "fine_channels": 16,
    "finer_channels": 16,
    "input_size": 256,
    "dense_size": 256,
}


# --------------------------------------------------------------------------- fixture data


def face_surface(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A face-like height field on a ``size`` grid, in pixels of that grid.

    Returns ``(depth_base, wrinkles, face_mask, detail_mask)``: an ellipsoid with a nose bump
    (0 outside), a wrinkle field (horizontal sinusoids on the forehead, ~1.5 px deep at 512),
    the face mask (the ellipse shrunk a little) and where the wrinkles are.
    """
    s = size / 512.0
    t = np.arange(size, dtype=np.float64)
    v, u = np.meshgrid(t, t, indexing="ij")
    cx, cy = size / 2 + rng.uniform(-12, 12) * s, size / 2 + rng.uniform(-12, 12) * s
    a, b = rng.uniform(150, 175) * s, rng.uniform(195, 215) * s
    x, y = (u - cx) / a, (v - cy) / b
    r2 = x**2 + y**2
    inside = r2 < 1.0
    height = rng.uniform(0.55, 0.7) * a
    base = np.where(inside, height * np.sqrt(np.clip(1.0 - r2, 0.0, None)) + 40.0 * s, 0.0)
    nose = 38.0 * s * np.exp(-(((u - cx) / (22 * s)) ** 2 + ((v - cy - 10 * s) / (45 * s)) ** 2) / 2)
    base = np.where(inside, base + nose, 0.0)
    window = np.exp(-(((u - cx) / (90 * s)) ** 2 + ((v - (cy - 0.55 * b)) / (35 * s)) ** 2) / 2)
    period = rng.uniform(14, 20) * s
    wrinkles = np.where(inside, 1.6 * s * window * np.sin(2 * np.pi * v / period + rng.uniform(0, 6)), 0.0)
    face = r2 < 0.93
    return base.astype(np.float32), wrinkles.astype(np.float32), face, (window > 0.15) & inside


def write_dataset(root: Path, kind: str, count: int, seed: int, size: int = CROP_SIZE) -> Path:
    """Write a tiny dataset folder in the ``df2net make-data`` format (see docs/conventions.md)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"{i:06d}"
        folder = root / name
        folder.mkdir(exist_ok=True)
        base, wrinkles, face, detail = face_surface(size, rng)
        valid = base > 0
        depth = np.where(valid, base + wrinkles, 0.0).astype(np.float32)
        normals = depth_to_normals(depth, valid)
        direction = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.2, 0.5), 1.0])
        light = directional_sh(direction / np.linalg.norm(direction), 0.75) + np.eye(9)[0] * 0.3
        shading = shade(normals.reshape(-1, 3).astype(np.float64), light).reshape(size, size)
        albedo = np.array([0.85, 0.65, 0.55]) * rng.uniform(0.8, 1.1)
        background = rng.uniform(0.1, 0.6, 3) + rng.normal(0, 0.03, (size, size, 3))
        img = np.where(valid[..., None], albedo * shading[..., None], background)
        Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(folder / "image.png")
        Image.fromarray((face * 255).astype(np.uint8)).save(folder / "mask.png")
        np.save(folder / "normals.npy", normals.astype(np.float16))
        if kind == "synthetic":
            np.save(folder / "depth.npy", depth)
            np.save(folder / "depth_base.npy", base)
            Image.fromarray((detail * 255).astype(np.uint8)).save(folder / "detail_mask.png")
        else:  # a 3DMM fit: smooth, no detail
            np.save(folder / "depth.npy", base)
        (folder / "params.json").write_text(json.dumps({"seed": seed, "index": i}))
        names.append(name)
    manifest = {
        "kind": kind,
        "seed": seed,
        "count": count,
        "crop_size": size,
        "df2net_version": "test",
        "samples": names,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a small shared CPU it is several times faster than more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train_data")
    return write_dataset(root / "synth", "synthetic", 6, seed=1), write_dataset(root / "fits", "fits", 3, seed=2)


def tiny_config(data_dirs: tuple[Path, Path], out: Path, stage: str, **kw) -> TrainConfig:
    synth, fits = data_dirs
    settings = {
        "stage": stage,
        "data": [DataSource(str(synth), 3.0), DataSource(str(fits), 1.0)],
        "out": str(out),
        "model": "cpu",
        "model_overrides": dict(TINY),
        "steps": 24,
        "batch_size": 4,
        "lr": 2e-3,
        "warmup_steps": 2,
        "train_size": 256,
        "augment": AugmentConfig.off(),
        "num_workers": 0,
        "log_every": 4,
        "sample_every": 100,
        "checkpoint_every": 100,
        "seed": 0,
    }
    settings.update(kw)
    return TrainConfig(**settings)


# --------------------------------------------------------------------------- config, data


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    cfg = TrainConfig(stage="finer", data=[DataSource("a", 2.0)], out=str(tmp_path), train_size=256)
    assert cfg.losses == LossConfig.for_stage("finer") and cfg.losses.shading > 0
    cfg.save(tmp_path / "config.json")
    back = TrainConfig.load(tmp_path / "config.json")
    assert back == cfg
    assert DataSource.parse("/x/y:0.5") == DataSource("/x/y", 0.5)
    assert DataSource.parse("C:/data") == DataSource("C:/data", 1.0)
    with pytest.raises(ValueError, match="unknown stage"):
        TrainConfig(stage="coarse")
    with pytest.raises(ValueError, match="zero_detail is for the finer stage"):
        TrainConfig(stage="fine", zero_detail=True)


def test_zero_detail_makes_the_chain_start_at_the_fine_depth() -> None:
    from df2net.model import MODEL_CONFIGS, build_model

    torch.manual_seed(0)
    model = build_model(replace(MODEL_CONFIGS["cpu"], **TINY)).eval()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        before = model.forward_stages(x)
        model.FrNet.zero_detail()
        after = model.forward_stages(x)
    assert not torch.equal(before.finer, before.fine)  # a fresh Fr-Net adds random detail
    assert torch.equal(after.finer, after.fine)


def test_folder_reading_and_units(data_dirs: tuple[Path, Path]) -> None:
    synth, fits = data_dirs
    f = FaceFolder.open(synth)
    assert f.kind == "synthetic" and len(f) == 6
    full, half = f.load(0, 512), f.load(0, 256)
    assert half["image"].shape == (3, 256, 256) and half["normals"].shape == (3, 256, 256)
    # Depth stays in crop pixels whatever the grid: the same values, not halved.
    m = half["valid"][0] > 0
    assert float(half["depth_base"][0][m].max()) == pytest.approx(float(full["depth_base"][0].max()), rel=0.02)
    g = FaceFolder.open(fits)
    assert g.kind == "fits"
    s = g.load(0, 256)
    assert torch.equal(s["depth"], s["depth_base"]) and s["detail_mask"].sum() == 0


def test_sampler_mixes_every_batch_and_shards_ranks() -> None:
    carry = np.zeros(2)
    assert allocate(8, [3, 1], carry).tolist() == [6, 2]
    carry = np.zeros(2)
    counts = np.array([allocate(2, [3, 1], carry) for _ in range(8)])
    assert (counts.sum(1) == 2).all() and counts.sum(0).tolist() == [12, 4]  # shares kept over time
    full = list(MixedBatchSampler([10, 4], [3, 1], 8, steps=5, seed=3))
    for batch in full:
        assert [k[0] for k in batch].count(1) == 2 and len(batch) == 8
    # Resuming at step 2 gives exactly the remaining batches.
    assert list(MixedBatchSampler([10, 4], [3, 1], 8, steps=5, seed=3, start=2)) == full[2:]
    # Two ranks of batch 4 share out exactly the batches one process of batch 8 would see,
    # with the same mixture each and disjoint samples (and augmentation slots) within a step.
    one = list(MixedBatchSampler([12, 4], [3, 1], 8, steps=5, seed=3))
    r0 = list(MixedBatchSampler([12, 4], [3, 1], 4, steps=5, seed=3, rank=0, world_size=2))
    r1 = list(MixedBatchSampler([12, 4], [3, 1], 4, steps=5, seed=3, rank=1, world_size=2))
    for a, b, both in zip(r0, r1, one):
        ids_a, ids_b = [(k[0], k[1]) for k in a], [(k[0], k[1]) for k in b]
        assert [k[0] for k in a].count(1) == 1 and [k[0] for k in b].count(1) == 1
        assert not set(ids_a) & set(ids_b)
        assert sorted(ids_a + ids_b) == sorted((k[0], k[1]) for k in both)
        assert {k[3] for k in a}.isdisjoint({k[3] for k in b})


# --------------------------------------------------------------------------- augmentation


def _grid_normals(sample: aug.Sample, key: str = "depth") -> torch.Tensor:
    """Normals computed from a sample's depth (crop pixels -> pixels of its grid)."""
    side = sample[key].shape[-1]
    depth = sample[key][None] * (side / CROP_SIZE)
    return depth_to_normals_torch(depth, sample["valid"][None] > 0.5)[0]


def test_flip_is_consistent_and_an_involution(data_dirs: tuple[Path, Path]) -> None:
    sample = FaceFolder.open(data_dirs[0]).load(1, 256)
    flipped = aug.hflip(sample)
    twice = aug.hflip(flipped)
    for key in sample:
        assert torch.equal(twice[key], sample[key]), key
    # Normals of the flipped depth are the flipped normals, x negated.
    n_of_flip = _grid_normals(flipped)
    expected = torch.flip(_grid_normals(sample), dims=(-1,))
    expected[0] = -expected[0]
    assert torch.allclose(n_of_flip, expected, atol=1e-5)
    assert torch.equal(flipped["normals"][0], -torch.flip(sample["normals"][0], dims=(-1,)))


def test_affine_warp_keeps_depth_normals_and_masks_consistent(data_dirs: tuple[Path, Path]) -> None:
    sample = FaceFolder.open(data_dirs[0]).load(2, 256)
    base = {k: sample[k] for k in ("depth", "valid", "face_mask", "image")}
    base["normals"] = _grid_normals(sample)
    warped = aug.warp_affine(base, scale=1.05, shift=(0.03, -0.02), angle=math.radians(5.0))
    inner = erode(warped["valid"][None], 3)[0, 0] > 0.5
    # The normals carried through the warp agree with the normals of the warped (rescaled) depth.
    cos = (warped["normals"] * _grid_normals(warped)).sum(0)[inner]
    assert float(cos.mean()) > 0.999 and float(cos.min()) > 0.98
    # A pure turn the other way does not match: the rotation of the normals is not a no-op.
    wrong = aug.warp_affine(base, scale=1.0, shift=(0.0, 0.0), angle=math.radians(5.0))
    wrong_n = wrong["normals"].clone()
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    wrong_n[0], wrong_n[1] = (
        c * wrong["normals"][0] - s * wrong["normals"][1],
        s * wrong["normals"][0] + c * wrong["normals"][1],
    )
    m2 = erode(wrong["valid"][None], 3)[0, 0] > 0.5
    assert float((wrong_n * _grid_normals(wrong)).sum(0)[m2].mean()) < float(cos.mean()) - 1e-3
    # Masks stay binary, depth stays within the magnified range.
    assert set(torch.unique(warped["face_mask"]).tolist()) <= {0.0, 1.0}
    assert float(warped["depth"].max()) <= float(sample["depth"].max()) * 1.05 + 1e-3


def test_photometric_and_network_input(data_dirs: tuple[Path, Path]) -> None:
    ds = TrainingSet(
        [DataSource(str(data_dirs[0]))],
        256,
        AugmentConfig(jpeg_prob=1.0, blur_prob=1.0, noise_prob=1.0, occlusion_prob=1.0),
    )
    item = ds[(0, 0, 5, 1)]
    again = ds[(0, 0, 5, 1)]
    assert all(torch.equal(item[k], again[k]) for k in item)  # keyed randomness: reproducible
    x = item["input"]
    assert x.shape == (3, 256, 256) and x.min() >= -1 and x.max() <= 1
    assert torch.all(x[:, item["face_mask"][0] == 0] == -1.0)  # masked like inference
    assert not torch.equal(ds[(0, 0, 6, 1)]["input"], x)


# --------------------------------------------------------------------------- losses


def test_depth_normal_and_gradient_losses_ignore_offset() -> None:
    torch.manual_seed(0)
    target = torch.randn(2, 1, 32, 32).cumsum(-1)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 4:28, 4:28] = 1
    assert torch.allclose(depth_l1(target + 17.0, target, mask), torch.zeros(2), atol=1e-5)
    assert torch.allclose(normal_loss(target + 3.0, target, mask), torch.zeros(2), atol=1e-6)
    assert (depth_l1(target * 1.5, target, mask) > 0.1).all()
    assert (normal_loss(target * 1.5, target, mask) > 1e-3).all()
    assert torch.allclose(gradient_l1(target + 3.0, target, mask), torch.zeros(2), atol=1e-6)
    assert (gradient_l1(target * 1.5, target, mask) > 1e-3).all()


def test_shading_loss_is_zero_for_an_exact_render_and_larger_for_a_wrong_depth() -> None:
    size = 128
    base, wrinkles, face, _ = face_surface(size, np.random.default_rng(4))
    depth = torch.from_numpy(np.where(base > 0, base + 2.0 * wrinkles, 0.0))[None, None].double()
    mask = torch.from_numpy(face.astype(np.float64))[None, None]
    normals = depth_to_normals_torch(depth, mask > 0.5).permute(0, 2, 3, 1)
    light = torch.as_tensor(directional_sh(np.array([0.4, 0.3, 0.87]), 0.8) + np.eye(9)[0] * 0.3)
    lum = 0.7 * shade(normals, light[None])  # constant albedo 0.7
    image = lum[:, None].expand(1, 3, size, size)  # grey: luminance = lum
    sigma = 0.05 * size
    exact = float(shading_loss(depth, image, mask, sigma, reg=1e-6))
    flat = float(shading_loss(torch.from_numpy(base)[None, None].double(), image, mask, sigma, reg=1e-6))
    assert exact < 1e-3
    assert flat > 10 * max(exact, 1e-4)
    # Gradients reach the depth.
    d = depth.clone().requires_grad_(True)
    shading_loss(d * 0.9, image, mask, sigma).sum().backward()
    assert d.grad is not None and torch.isfinite(d.grad).all() and d.grad.abs().sum() > 0


# --------------------------------------------------------------------------- training


def _curve(run: Path) -> list[float]:
    return [h["total"] for h in json.loads((run / "history.json").read_text())]


def test_finer_loss_weighs_shading_of_synthetic_samples_by_shading_synthetic() -> None:
    from df2net.model import MODEL_CONFIGS

    size = 64
    gen = torch.Generator().manual_seed(0)
    depth = 40.0 + torch.randn(2, 1, size, size, generator=gen).cumsum(-1) * 0.3
    face = torch.zeros(2, 1, size, size)
    face[..., 8:56, 8:56] = 1
    batch = {
        "mask": face,
        "face_mask": face,
        "detail_mask": torch.zeros_like(face),
        "depth": depth,
        "depth_base": depth,
        "image": torch.rand(2, 3, size, size, generator=gen),
    }
    model_config = MODEL_CONFIGS["cpu"]
    units = crop_pixels_to_units(depth, model_config)
    pred = {"finer": units, "fine": units}

    def shading_term(weight: float, synthetic: list[float]) -> float:
        b = dict(batch, synthetic=torch.tensor(synthetic))
        cfg = replace(LossConfig.for_stage("finer"), shading_synthetic=weight)
        _, terms = stage_loss("finer", pred, b, model_config, cfg, grid=size)
        return float(terms["shading"])

    assert shading_term(0.0, [1.0, 1.0]) == 0.0  # synthetic only, weight 0: no shading term
    real = shading_term(0.0, [0.0, 0.0])
    assert real > 0 and shading_term(1.0, [1.0, 1.0]) == pytest.approx(real)  # the weight only
    assert shading_term(0.5, [1.0, 1.0]) == pytest.approx(0.5 * real)


def test_detail_loss_compares_fr_nets_added_detail_with_the_procedural_detail() -> None:
    from df2net.model import MODEL_CONFIGS

    size = 64
    gen = torch.Generator().manual_seed(1)
    base = 40.0 + torch.randn(2, 1, size, size, generator=gen).cumsum(-1) * 0.3
    wrinkles = 0.2 * torch.sin(torch.arange(size, dtype=torch.float32) * 0.8).view(1, 1, size, 1).expand_as(base)
    face = torch.zeros(2, 1, size, size)
    face[..., 8:56, 8:56] = 1
    depth = base + wrinkles
    batch = {
        "mask": face,
        "face_mask": face,
        "detail_mask": torch.zeros_like(face),
        "depth": depth,
        "depth_base": base,
        "image": torch.rand(2, 3, size, size, generator=gen),
        "synthetic": torch.tensor([1.0, 0.0]),
    }
    model_config = MODEL_CONFIGS["cpu"]
    cfg = replace(LossConfig(), detail=1.0, depth=0.0, normal=0.0)
    # F-Net's depth carries a coarse error; the term only sees what Fr-Net adds on top of it.
    fine = crop_pixels_to_units(base + 3.0 * torch.linspace(0, 1, size).view(1, 1, 1, size), model_config)
    added = crop_pixels_to_units(wrinkles, model_config) - crop_pixels_to_units(torch.zeros_like(wrinkles), model_config)

    def detail_term(finer: torch.Tensor, synthetic: list[float] = [1.0, 0.0]) -> float:
        b = dict(batch, synthetic=torch.tensor(synthetic))
        _, terms = stage_loss("finer", {"finer": finer, "fine": fine}, b, model_config, cfg, grid=size)
        return float(terms["detail"])

    assert detail_term(fine + added) == pytest.approx(0.0, abs=1e-5)  # exactly the procedural detail
    missing = detail_term(fine)
    assert missing > 1e-3 and detail_term(fine + 0.5 * added) == pytest.approx(0.5 * missing, rel=1e-3)
    assert detail_term(fine, [0.0, 0.0]) == 0.0  # photos have no procedural truth


def test_each_stage_trains_its_own_part_and_loss_goes_down(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from df2net.model import load_weights
    from df2net.train.loop import train

    # Fine and finer both start from the dense weights. F-Net and Fr-Net start out nearly
    # constant (their 1-channel tail sits mostly in the leaky part), so they get a high, flat
    # learning rate to get going within the few steps a test can afford; and Fr-Net starts on an
    # untrained F-Net (its base is flat), which leaves it something to learn in 20 steps.
    schedules = {
        "dense": {"steps": 12},
        "fine": {"steps": 20, "lr": 1e-2, "min_lr_ratio": 1.0},
        "finer": {"steps": 20, "lr": 1e-2, "min_lr_ratio": 1.0},
    }
    runs: dict[str, Path] = {}
    for stage, schedule in schedules.items():
        out = tmp_path / stage
        init = None if stage == "dense" else str(runs["dense"] / "final.safetensors")
        cfg = tiny_config(data_dirs, out, stage, init=init, log_every=4, sample_every=schedule["steps"], **schedule)
        weights = train(cfg)
        assert weights == out / "final.safetensors" and weights.is_file()
        curve = _curve(out)
        assert np.mean(curve[-2:]) < 0.85 * np.mean(curve[:2]), (stage, curve)
        assert (out / "loss_curve.png").is_file() and (out / "config.json").is_file()
        assert list((out / "samples").glob("*.png")), "no sample picture"
        runs[stage] = out

    dense, fine, finer = (load_weights(runs[s] / "final.safetensors") for s in ("dense", "fine", "finer"))
    assert finer.metadata["recipe"]["stage"] == "finer"
    assert finer.metadata["recipe"]["previous"]["stage"] == "dense"
    assert set(finer.metadata["recipe"]["final_losses"]) >= {"depth", "normal", "shading", "fidelity", "laplacian"}
    d_state, f_state, r_state = (x.model.state_dict() for x in (dense, fine, finer))
    changed = {
        stage: {n for n in d_state if not torch.equal(d_state[n], state[n])}
        for stage, state in (("fine", f_state), ("finer", r_state))
    }
    # Only the stage's own sub-network moved (buffers included); the rest stayed frozen.

    from df2net.model import MODEL_CONFIGS, build_model

    torch.manual_seed(0)  # the trainer's seed before it builds the network
    fresh = build_model(replace(MODEL_CONFIGS["cpu"], **TINY)).state_dict()
    moved = {n for n in fresh if not torch.equal(fresh[n], d_state[n])}
    assert moved and not any(n.startswith(("FNet.", "FrNet.")) for n in moved)
    assert changed["fine"] and all(n.startswith("FNet.") for n in changed["fine"])
    assert changed["finer"] and all(n.startswith("FrNet.") for n in changed["finer"])


def test_dense_stage_trains_under_bf16_autocast_on_cpu_and_saves_float32(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors import safe_open

    from df2net.train.loop import train

    out = tmp_path / "amp"
    weights = train(tiny_config(data_dirs, out, "dense", steps=12, amp=True, channels_last=True, log_every=4, sample_every=12))
    curve = _curve(out)
    assert np.mean(curve[-2:]) < 0.85 * np.mean(curve[:2]), curve
    history = json.loads((out / "history.json").read_text())
    assert all(np.isfinite(h["level"]) and -3 < h["level"] < 3 for h in history)  # D's output level, logged
    with safe_open(str(weights), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes <= {torch.float32, torch.int64} and torch.float32 in dtypes  # the weights always fp32 (int64: batch-norm counters)


def test_level_drift_warns_once_when_d_nets_level_moves_and_not_while_it_holds() -> None:
    from types import SimpleNamespace

    from df2net.train.hooks import LevelDrift

    def feed(levels: list[float]) -> list[warnings.WarningMessage]:
        hook = LevelDrift(limit=0.05, window=5)
        hook.trainer = SimpleNamespace(stage="dense", info=SimpleNamespace(is_main=True))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for level in levels:
                hook.after_step({"total": 0.1, "level": level}, {})
        return [w for w in caught if "output level moved" in str(w.message)]

    rng = np.random.default_rng(0)
    noisy = list(-0.49 + 0.02 * rng.standard_normal(60))  # step-to-step noise, no drift
    assert feed(noisy) == []
    drifting = [-0.49 + 0.2 * i / 60 for i in range(60)]  # recipe step 18: +0.2 units over the run
    caught = feed(drifting)
    assert len(caught) == 1 and "moved +0.05" in str(caught[0].message)  # as soon as it passes the limit
    assert feed([]) == [] and LevelDrift().after_step({"total": 0.1}, {}) is None  # stages without a level


def test_resume_continues_at_the_saved_step_with_identical_weights(
    data_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from df2net.train.checkpoints import latest_checkpoint
    from df2net.train.loop import Trainer, train

    aug_on = AugmentConfig(jpeg_prob=0.5)
    full = tmp_path / "full"
    train(tiny_config(data_dirs, full, "dense", steps=6, checkpoint_every=3, augment=aug_on, num_workers=1))
    ckpts = sorted((full / "checkpoints").glob("step_*.pt"))
    assert [p.name for p in ckpts] == ["step_00000003.pt", "step_00000006.pt"]
    ckpt = torch.load(ckpts[0], weights_only=True)  # loads with weights_only: no pickled objects
    assert ckpt["step"] == 3

    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpts[0], part / "checkpoints" / ckpts[0].name)
    cfg = tiny_config(data_dirs, part, "dense", steps=6, checkpoint_every=3, augment=aug_on, num_workers=1)
    cfg.save(part / "config.json")
    trainer = Trainer(cfg, resume=True)
    assert trainer.step == 3
    assert trainer.scheduler.last_epoch == 3
    trainer.run()
    trainer.close()
    assert latest_checkpoint(part).name == "step_00000006.pt"
    a = torch.load(full / "checkpoints" / "step_00000006.pt", weights_only=True)["model"]
    b = torch.load(part / "checkpoints" / "step_00000006.pt", weights_only=True)["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name
    with pytest.raises(FileExistsError):
        Trainer(cfg)  # a run folder with checkpoints is not overwritten by a new run


_DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from df2net.train.config import TrainConfig
    from df2net.train.loop import Trainer
    from df2net.train import distributed

    cfg = TrainConfig.load(sys.argv[1])
    trainer = Trainer(cfg)
    trainer.run()
    trainer.close()
    torch.save(trainer.model.state_dict(), f"{sys.argv[2]}/rank{trainer.info.rank}.pt")
    distributed.cleanup()
    """
)


def test_ddp_two_cpu_processes_end_with_equal_weights(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = tiny_config(data_dirs, tmp_path / "run", "dense", steps=4, batch_size=2, log_every=2)
    cfg.save(tmp_path / "cfg.json")
    script = tmp_path / "ddp_train.py"
    script.write_text(_DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path / "cfg.json"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert s0.keys() == s1.keys()
    for name in s0:
        assert torch.equal(s0[name], s1[name]), name
    init = torch.load(next((tmp_path / "run" / "checkpoints").glob("*.pt")), weights_only=True)
    assert init["step"] == 4
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_cli_trains_two_steps_and_exports(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from df2net.cli import main
    from df2net.model import load_weights

    base = tiny_config(data_dirs, tmp_path / "unused", "dense", augment=AugmentConfig())
    base.save(tmp_path / "tiny.json")
    synth, fits = data_dirs
    out, export = tmp_path / "run", tmp_path / "exported.safetensors"
    rc = main(
        [
            "train",
            "--stage",
            "dense",
            "--data",
            f"{synth}:3",
            "--data",
            f"{fits}:1",
            "--out",
            str(out),
            "--train-config",
            str(tmp_path / "tiny.json"),
            "--steps",
            "2",
            "--batch",
            "2",
            "--workers",
            "0",
            "--export",
            str(export),
        ]
    )
    assert rc == 0
    saved = TrainConfig.load(out / "config.json")
    assert saved.steps == 2 and saved.data[0].weight == 3.0 and saved.augment.enabled
    loaded = load_weights(export)
    assert loaded.config.name == "tiny" and loaded.metadata["recipe"]["steps"] == 2
    # --resume with more steps continues the same run.
    rc = main(["train", "--out", str(out), "--resume", "--steps", "3"])
    assert rc == 0
    assert load_weights(out / "final.safetensors").metadata["recipe"]["steps"] == 3
    assert main(["train", "--out", str(tmp_path / "new")]) == 2  # a new run needs --stage and --data


def test_patch_windows_sit_on_the_face_and_crop_what_they_say() -> None:
    from df2net.train.stages import crop_windows, patch_windows

    mask = torch.zeros(3, 1, 64, 64)
    mask[0, 0, 40:50, 44:60] = 1.0
    mask[1, 0, 0:4, 0:4] = 1.0  # a face in the corner: the window is clamped inside the map
    windows = patch_windows(mask, 32, np.random.default_rng(0))
    assert windows.shape == (3, 3) and (windows[:, 2] == 32).all()
    assert ((windows[:, :2] >= 0) & (windows[:, :2] <= 32)).all()
    for i in range(2):
        y, x = int(windows[i, 0]), int(windows[i, 1])
        assert mask[i, 0, y : y + 32, x : x + 32].sum() > 0
    t = torch.arange(3 * 2 * 64 * 64, dtype=torch.float32).view(3, 2, 64, 64)
    crops = crop_windows(t, windows, 32)
    assert crops.shape == (3, 2, 32, 32)
    y, x = int(windows[2, 0]), int(windows[2, 1])
    assert torch.equal(crops[2], t[2, :, y : y + 32, x : x + 32])


def test_finer_stage_trains_fr_net_on_patches(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import Image

    from df2net.model import load_weights
    from df2net.train.loop import train

    dense = train(tiny_config(data_dirs, tmp_path / "dense", "dense", steps=2))
    out = tmp_path / "finer"
    cfg = tiny_config(
        data_dirs, out, "finer", init=str(dense), steps=8, patch_size=64, lr=1e-2, min_lr_ratio=1.0, sample_every=8
    )
    weights = train(cfg)
    curve = _curve(out)
    assert curve and np.isfinite(curve).all()
    before, after = (load_weights(p).model.state_dict() for p in (dense, weights))
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved and all(n.startswith("FrNet.") for n in moved)
    (sheet,) = (out / "samples").glob("*.png")
    assert Image.open(sheet).size == (5 * 64, 4 * 64)  # one row per sample, patch-sized


def test_warmup_cosine_follows_steps_or_progress_whichever_is_further() -> None:
    from df2net.train.schedule import warmup_cosine

    assert warmup_cosine(0, 4, 100, 0.1) == pytest.approx(0.25)  # warm-up ignores progress
    assert warmup_cosine(0, 4, 100, 0.1, progress=0.9) == pytest.approx(0.25)
    assert warmup_cosine(4, 4, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(52, 4, 100, 0.1) == pytest.approx(0.55)  # half way by steps
    assert warmup_cosine(4, 4, 100, 0.1, progress=0.5) == pytest.approx(0.55)  # half way by time
    assert warmup_cosine(52, 4, 100, 0.1, progress=0.1) == pytest.approx(0.55)
    assert warmup_cosine(10, 4, 100, 0.1, progress=1.5) == pytest.approx(0.1)


def test_time_limit_ends_the_run_early_with_the_learning_rate_at_its_floor(
    data_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from df2net.model import load_weights
    from df2net.train.loop import train

    out = tmp_path / "timed"
    # 0.1 ms: spent by the first step, so the run ends after it.
    cfg = tiny_config(data_dirs, out, "dense", steps=50, warmup_steps=0, time_limit_min=1e-6, min_lr_ratio=0.05)
    weights = train(cfg)
    recipe = load_weights(weights).metadata["recipe"]
    assert recipe["steps"] == 1 and recipe["train_config"]["time_limit_min"] == 1e-6
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["step"] == 1 and history[-1]["lr"] == pytest.approx(cfg.lr * 0.05)
    assert (out / "checkpoints" / "step_00000001.pt").is_file()
    with pytest.raises(ValueError, match="time_limit_min"):
        replace(cfg, time_limit_min=0.0).__post_init__()


def test_model_overrides_apply_to_the_init_weights_own_config(data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from df2net.model import MODEL_CONFIGS, build_model, load_weights, save_weights
    from df2net.train.loop import Trainer

    # Weights in other units than the named config's (as after reconfigure_weights).
    config = replace(MODEL_CONFIGS["cpu"], **TINY, depth_scale=255.0, depth_offset=255.0)
    init = tmp_path / "init.safetensors"
    save_weights(build_model(config), config, init)
    cfg = tiny_config(data_dirs, tmp_path / "wider", "finer", model=None, init=str(init))
    cfg = replace(cfg, model_overrides={"finer_channels": 2 * config.finer_channels})
    with pytest.warns(UserWarning, match="finer_channels"):
        trainer = Trainer(cfg)
    assert trainer.model_config.depth_scale == 255.0 and trainer.model_config.depth_offset == 255.0
    assert trainer.model_config.finer_channels == 2 * config.finer_channels
    before = load_weights(init).model.state_dict()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("FrNet."))

    # A wider D-Net is grown from the init's (model.widen): the same depth, more channels.
    cfg = replace(cfg, out=str(tmp_path / "wide_d"), stage="dense", model_overrides={"dense_channels": config.dense_channels + 2})
    with pytest.warns(UserWarning, match="D-Net widened"):
        trainer = Trainer(cfg)
    assert trainer.model_config.dense_channels == config.dense_channels + 2
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        narrow = load_weights(init).model.eval()
        assert torch.allclose(trainer.model.eval().dense_depth(x), narrow.dense_depth(x), atol=1e-5)


# --------------------------------------------------------------------------- albedo-only marks, in pairs


def paint_marks(root: Path, names: list[str], seed: int) -> None:
    """Give samples ``names`` of a dataset folder dark albedo-only dots (colour only, the depth
    unchanged), as ``make-data synthetic --marks`` does: ``image.png`` is the marked render,
    ``image_unmarked.png`` the original, ``marks_mask.png`` where the dots are."""
    rng = np.random.default_rng(seed)
    for name in names:
        folder = root / name
        plain = np.asarray(Image.open(folder / "image.png"))
        face = np.asarray(Image.open(folder / "mask.png")) > 127
        marks = np.zeros(face.shape, bool)
        ys, xs = np.nonzero(face)
        yy, xx = np.mgrid[: face.shape[0], : face.shape[1]]
        for k in rng.choice(ys.size, 12, replace=False):
            marks |= (yy - ys[k]) ** 2 + (xx - xs[k]) ** 2 <= rng.uniform(3, 8) ** 2
        marks &= face
        marked = np.where(marks[..., None], (plain * 0.45).astype(np.uint8), plain)
        Image.fromarray(plain).save(folder / "image_unmarked.png")
        Image.fromarray(marked).save(folder / "image.png")
        Image.fromarray(marks.astype(np.uint8) * 255).save(folder / "marks_mask.png")


@pytest.fixture(scope="module")
def marked_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_dataset(tmp_path_factory.mktemp("marked") / "synth", "synthetic", 4, seed=11)
    paint_marks(root, ["000000", "000001", "000002"], seed=12)  # 000003 has no marks and no twin
    return root


def test_twins_are_the_unmarked_render_with_the_same_augmentation(marked_dir: Path) -> None:
    cfg = AugmentConfig(jpeg_prob=0.0, blur_prob=0.0, noise_prob=1.0, occlusion_prob=0.0, rotate_deg=10.0)
    ds = TrainingSet([DataSource(str(marked_dir))], 256, cfg, twins=True)
    for index in range(3):
        item = ds[(0, index, 3, index)]
        assert item["has_twin"] == 1.0 and item["input_twin"].shape == item["input"].shape
        marks = item["marks_mask"][0] > 0
        assert marks.any()
        gap = (item["input"] - item["input_twin"]).abs().amax(0)
        # Flip, warp, tint, gamma and noise were drawn alike: the two inputs differ under the
        # (warped) marks and, from resampling, within a pixel or two of them; elsewhere only by
        # the contrast change about each image's own mean (an 8-bit step or two).
        near = torch.nn.functional.max_pool2d(marks[None, None].float(), 7, 1, 3)[0, 0] > 0
        assert (gap[marks] > 0.1).float().mean() > 0.9 and float(gap[~near].max()) <= 2.5 / 127.5
        assert (item["input"][:, marks] < item["input_twin"][:, marks]).float().mean() > 0.9  # the marks are dark
    plain = ds[(0, 3, 3, 0)]
    assert plain["has_twin"] == 0.0 and torch.equal(plain["input"], plain["input_twin"])
    assert plain["marks_mask"].sum() == 0
    without = TrainingSet([DataSource(str(marked_dir))], 256, cfg)  # twins off: the usual fields only
    assert "input_twin" not in without[(0, 0, 3, 0)] and "has_twin" not in without[(0, 0, 3, 0)]


def test_pair_loss_is_what_the_marks_change_and_its_band_ignores_smooth_bends() -> None:
    from df2net.train.losses import pair_loss

    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    face = torch.ones(1, 1, 64, 64)
    marks = (((yy - 32) ** 2 + (xx - 32) ** 2) <= 9).float()[None, None]
    plain = 0.01 * (xx - 32) ** 2
    plain = plain[None, None]
    same = pair_loss(plain + 3.0, plain, face, marks, 2.0, 4.0)  # an offset is no change of shape
    assert float(same[0]) < 1e-5 and float(same[1]) < 1e-5
    bump = pair_loss(plain + 0.5 * marks, plain, face, marks, 2.0, 4.0)
    bend = pair_loss(plain + 0.002 * (xx - 32)[None, None] ** 2, plain, face, marks, 2.0, 4.0)
    assert float(bump[1]) > 0.3 * float(bump[0]) > 0  # a mark-sized bump is mostly relief band
    assert float(bend[1]) < 0.05 * float(bend[0])  # a broad bend is almost none


def test_dense_and_fine_stages_train_on_pairs_and_learn_to_ignore_the_marks(marked_dir: Path, tmp_path: Path) -> None:
    from df2net.model import load_weights
    from df2net.train.loop import Trainer, train

    losses = LossConfig(depth=1.0, normal=1.0, pair=1.0, pair_band=10.0)
    common = {
        "data": [DataSource(str(marked_dir))],
        "model": "cpu",
        "model_overrides": dict(TINY),
        "batch_size": 2,
        "pair_share": 1.0,
        "train_size": 256,
        "augment": AugmentConfig.off(),
        "num_workers": 0,
        "log_every": 1,
        "sample_every": 100,
        "checkpoint_every": 100,
    }
    dense = TrainConfig(stage="dense", out=str(tmp_path / "d"), steps=14, lr=3e-3, warmup_steps=1, losses=losses, **common)
    trainer = Trainer(dense)
    batch = next(iter(trainer.loader()))
    extended, idx = trainer._add_twins(batch)
    n = int(batch["has_twin"].sum())
    assert idx is not None and idx.numel() == n and extended["input"].shape[0] == 2 + n
    assert torch.equal(extended["input"][2:], batch["input_twin"][idx])
    assert torch.equal(extended["depth"][2:], batch["depth"][idx])  # a twin keeps its original's target
    trainer.close()
    weights = train(dense)
    history = json.loads((tmp_path / "d" / "history.json").read_text())
    logged = [h for h in history if "pair" in h]
    assert len(logged) >= 10 and all(np.isfinite(h["pair"]) and h["pair_band"] >= 0 for h in logged)
    first, last = np.mean([h["pair"] for h in logged[:3]]), np.mean([h["pair"] for h in logged[-3:]])
    assert last < first, (first, last)
    fine = TrainConfig(stage="fine", out=str(tmp_path / "f"), init=str(weights), steps=3, lr=3e-3, losses=losses, **common)
    loaded = load_weights(train(fine))
    assert loaded.metadata["recipe"]["stage"] == "fine"
    assert "pair_band" in json.loads((tmp_path / "f" / "history.json").read_text())[-1]
    with pytest.raises(ValueError, match="pair terms are for the dense and fine stages"):
        TrainConfig(stage="finer", losses=LossConfig(pair=1.0))


def test_cli_pair_flags_set_the_loss_weights_of_a_new_run(tmp_path: Path) -> None:
    import argparse

    from df2net.train.cli import build_config, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--stage", "fine", "--data", "d", "--out", str(tmp_path / "r"), "--pair-band", "0.5"])
    config, _ = build_config(args)
    assert config.losses.pair_band == 0.5 and config.losses.pair == 0.0
    assert config.losses.gradient == LossConfig.for_stage("fine").gradient  # the stage's other weights kept
    assert config.amp is False and config.channels_last is True  # the defaults
    config, _ = build_config(parser.parse_args(["train", "--stage", "dense", "--data", "d", "--out", str(tmp_path / "r"), "--amp"]))
    assert config.amp is True and config.ema_decay is None
    run = tmp_path / "r2"
    config, _ = build_config(parser.parse_args(["train", "--stage", "dense", "--data", "d", "--out", str(run), "--ema-decay", "0.99"]))
    assert config.ema_decay == 0.99
    config.replace(ema_decay=None).save(run / "config.json")
    config, notes = build_config(parser.parse_args(["train", "--out", str(run), "--resume", "--ema-decay", "0.999"]))
    assert config.ema_decay == 0.999 and not notes  # resumable: a running run can start averaging


def test_history_plot_puts_validation_scores_in_a_panel_of_their_own(tmp_path: Path) -> None:
    """Losses logged every interval in the top panel, scores logged every few intervals below;
    the clock (``time_min``) is not a curve."""
    pytest.importorskip("matplotlib")
    from df2net.train.plots import plot_history

    losses_only = [{"step": float(s), "time_min": s / 10, "loss": 1.0 / s} for s in range(1, 20)]
    with_scores = [dict(h, **({"relief_r": 0.1 * i, "false_relief_um": 30.0 + i} if i % 5 == 4 else {})) for i, h in enumerate(losses_only)]
    assert plot_history(losses_only, tmp_path / "a.png") and plot_history(with_scores, tmp_path / "b.png")
    one, two = Image.open(tmp_path / "a.png"), Image.open(tmp_path / "b.png")
    assert one.size == (800, 450) and two.size == (800, 700)
    # the lower panel of the second plot holds drawn curves (not a blank axis)
    lower = np.asarray(two.convert("L"))[470:650, 100:700]
    assert (lower < 200).mean() > 0.005


def test_band_l1_sees_the_relief_band_and_not_smooth_or_offset_errors() -> None:
    from df2net.train.losses import band_l1

    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    mask = torch.ones(1, 1, 64, 64)
    target = torch.zeros(1, 1, 64, 64)
    offset = torch.full((1, 1, 64, 64), 5.0)
    smooth = (0.002 * (xx - 32) ** 2)[None, None]  # a gentle bend: its high-pass is -a sigma^2 inside
    bumps = (torch.sin(xx / 1.5) * torch.sin(yy / 1.5))[None, None]  # fold-sized relief
    bump_err = float(band_l1(bumps, target, mask, 4.0)[0])
    assert float(band_l1(offset, target, mask, 4.0)[0]) < 1e-5
    assert float(band_l1(smooth, target, mask, 4.0)[0]) < 0.2 * bump_err
    assert bump_err > 0.3  # most of the bumps' mean |value| (about 0.4) is in the band
    assert float(band_l1(target, target, mask, 4.0)[0]) == 0.0


# --------------------------------------------------------------------------- region boost


@pytest.fixture(scope="module")
def region_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic samples; the first has landmarks (eyes and mouth left of centre), the second none."""
    from test_face_regions import synthetic_landmarks

    root = write_dataset(tmp_path_factory.mktemp("regions") / "synth", "synthetic", 2, seed=21)
    lm = synthetic_landmarks(dx=-30.0)
    (root / "000000" / "landmarks.json").write_text(json.dumps({"crop": lm.tolist()}))
    return root


def test_region_maps_come_from_the_landmarks_and_move_with_the_mask(region_dir: Path) -> None:
    from test_face_regions import synthetic_landmarks

    from df2net.face_regions import expression_regions

    lm = synthetic_landmarks(dx=-30.0)
    folder = FaceFolder.open(region_dir)
    full = folder.load(0, 512, region=True)
    assert torch.equal(full["region"][0] > 0, torch.from_numpy(expression_regions(lm, 512)))
    half = folder.load(0, 256, region=True)
    region = half["region"][0] > 0
    expected = torch.from_numpy(expression_regions((lm + 0.5) / 2 - 0.5, 256))
    assert float((region & expected).sum()) / float((region | expected).sum()) > 0.85  # resized like a mask
    assert set(torch.unique(half["region"]).tolist()) == {0.0, 1.0}
    assert not (region & (half["face_mask"][0] == 0)).any()
    assert "region" not in folder.load(0, 256)  # asked for only
    assert float(folder.load(1, 256, region=True)["region"].sum()) == 0.0  # no landmarks.json: no region

    source = [DataSource(str(region_dir))]
    plain = TrainingSet(source, 256, AugmentConfig.off(), regions=True)[(0, 0, 0, 0)]
    no_warp = {"flip": 1.0, "scale": 0.0, "shift": 0.0, "rotate_deg": 0.0}
    flipped = TrainingSet(source, 256, AugmentConfig(**no_warp), regions=True)[(0, 0, 0, 0)]
    assert torch.equal(plain["region"], half["region"])
    assert torch.equal(flipped["region"], torch.flip(plain["region"], dims=(-1,)))
    assert torch.equal(flipped["face_mask"], torch.flip(plain["face_mask"], dims=(-1,)))
    cols = torch.arange(256.0)

    def centre_u(r: torch.Tensor) -> float:
        return float((r[0].sum(0) * cols).sum() / r.sum())

    assert centre_u(plain["region"]) < 120 and centre_u(flipped["region"]) > 136  # left of centre, then right
    warped = TrainingSet(source, 256, AugmentConfig(flip=1.0, rotate_deg=10.0), regions=True)
    for step in range(3):
        item = warped[(0, 0, step, 0)]
        assert 0.8 < float(item["region"].sum() / plain["region"].sum()) < 1.25
        assert not ((item["region"] > 0) & (item["face_mask"] == 0)).any()  # still inside the face
        assert centre_u(item["region"]) > 128
    assert "region" not in TrainingSet(source, 256, AugmentConfig.off())[(0, 0, 0, 0)]


def _region_batch(size: int = 64) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """A batch of one smooth target in a square mask, a region square, and two equal bumps:
    one inside the region, one outside (both well inside the mask)."""
    gen = torch.Generator().manual_seed(3)
    depth = 40.0 + torch.randn(1, 1, size, size, generator=gen).cumsum(-1) * 0.3
    mask = torch.zeros(1, 1, size, size)
    mask[..., 8:56, 8:56] = 1
    region = torch.zeros_like(mask)
    region[..., 18:34, 18:34] = 1
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")

    def bump(u: float) -> torch.Tensor:
        return (1.5 * torch.exp(-((xx - u) ** 2 + (yy - 26) ** 2) / (2 * 2.0**2)))[None, None]

    batch = {
        "mask": mask,
        "face_mask": mask,
        "detail_mask": torch.zeros_like(mask),
        "region": region,
        "depth": depth,
        "depth_base": depth,
        "synthetic": torch.tensor([1.0]),
    }
    return batch, depth + bump(26.0), depth + bump(44.0)


def test_region_boost_zero_leaves_the_loss_exactly_as_it_was() -> None:
    from df2net.model import MODEL_CONFIGS
    from df2net.train.losses import band_l1, units_to_grid_pixels

    model_config, size = MODEL_CONFIGS["cpu"], 64
    batch, inside, _ = _region_batch(size)
    cfg = LossConfig(depth=1.0, normal=2.0, gradient=1.0, band=1.0, pair_sigma_px=32.0)
    assert cfg.region_boost == 0.0
    pred = {"fine": crop_pixels_to_units(inside, model_config)}
    total, terms = stage_loss("fine", pred, batch, model_config, cfg, grid=size)
    without = {k: v for k, v in batch.items() if k != "region"}
    total2, terms2 = stage_loss("fine", pred, without, model_config, cfg, grid=size)
    assert torch.equal(total, total2) and all(torch.equal(terms[k], terms2[k]) for k in terms)
    # The terms as they were computed before region weights existed, bit for bit.
    out_px = units_to_grid_pixels(pred["fine"], model_config, size)
    tgt_px = batch["depth"] * (size / CROP_SIZE)
    mask = batch["mask"]
    tgt_units = crop_pixels_to_units(batch["depth"], model_config)
    assert torch.equal(terms["depth"], depth_l1(pred["fine"], tgt_units, mask).mean())
    assert torch.equal(terms["normal"], normal_loss(out_px, tgt_px, mask, 2).mean())
    assert torch.equal(terms["gradient"], gradient_l1(out_px, tgt_px, mask, 2).mean())
    assert torch.equal(terms["band"], band_l1(out_px, tgt_px, mask, 32.0 * size / CROP_SIZE).mean())


def test_region_boost_makes_an_error_in_the_region_cost_more_than_the_same_error_outside() -> None:
    from df2net.model import MODEL_CONFIGS

    model_config, size = MODEL_CONFIGS["cpu"], 64
    batch, inside, outside = _region_batch(size)
    names = ("depth", "normal", "gradient", "band")

    def terms(depth: torch.Tensor, boost: float, region: torch.Tensor | None = None) -> dict[str, float]:
        cfg = LossConfig(depth=1.0, normal=1.0, gradient=1.0, band=1.0, pair_sigma_px=32.0, region_boost=boost)
        b = batch if region is None else dict(batch, region=region)
        _, t = stage_loss("fine", {"fine": crop_pixels_to_units(depth, model_config)}, b, model_config, cfg, grid=size)
        return {k: float(t[k]) for k in names}

    plain_in, plain_out = terms(inside, 0.0), terms(outside, 0.0)
    boosted_in, boosted_out = terms(inside, 4.0), terms(outside, 4.0)
    for k in names:
        assert plain_in[k] == pytest.approx(plain_out[k], rel=0.05), k  # the same error, either place
        assert boosted_in[k] > 1.5 * boosted_out[k] > 0, k
        assert boosted_in[k] > plain_in[k] and boosted_out[k] < plain_out[k], k  # weighted means
    # An empty region leaves every pixel at weight 1.
    empty = terms(inside, 4.0, torch.zeros_like(batch["region"]))
    assert all(empty[k] == pytest.approx(plain_in[k], rel=1e-6) for k in names)
    with pytest.raises(ValueError, match="region"):
        stage_loss(
            "fine",
            {"fine": crop_pixels_to_units(inside, model_config)},
            {k: v for k, v in batch.items() if k != "region"},
            model_config,
            LossConfig(region_boost=1.0),
            grid=size,
        )


def test_a_run_with_region_boost_carries_the_region_maps_into_its_batches(region_dir: Path, tmp_path: Path) -> None:
    import argparse

    from df2net.train.cli import build_config, register
    from df2net.train.loop import Trainer

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["train", "--stage", "dense", "--data", "d", "--out", str(tmp_path / "c"), "--region-boost", "3"]
    )
    config, _ = build_config(args)
    assert config.losses.region_boost == 3.0 and config.losses.normal == LossConfig.for_stage("dense").normal
    with pytest.raises(ValueError, match="region_boost"):
        TrainConfig(stage="dense", losses=LossConfig(region_boost=-1.0))

    losses = replace(LossConfig.for_stage("dense"), region_boost=3.0)
    small = {"data": [DataSource(str(region_dir))], "batch_size": 2, "steps": 1}
    trainer = Trainer(tiny_config((region_dir, region_dir), tmp_path / "r", "dense", losses=losses, **small))
    batch = next(iter(trainer.loader()))
    assert batch["region"].shape == batch["mask"].shape and float(batch["region"].sum()) > 0
    values, _ = trainer.train_step(batch)
    assert np.isfinite(values["total"]) and values["depth"] > 0
    trainer.close()
    off = Trainer(tiny_config((region_dir, region_dir), tmp_path / "o", "dense", **small))
    assert "region" not in next(iter(off.loader()))  # off: no landmarks read, no region field
    off.close()


def test_plane_fit_finds_a_known_plane_inside_the_mask_and_ignores_what_lies_outside() -> None:
    from df2net.train.losses import plane_fit, remove_plane

    size = 48
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    bowl = 3.0 * (xx**2 + yy**2)  # symmetric about the middle: adds no tilt
    mask = torch.zeros(2, 1, size, size)
    mask[..., 4:44, 4:44] = 1
    depth = torch.stack([0.7 * xx - 0.2 * yy + 5.0 + bowl, -1.3 * xx + bowl])[:, None]
    depth = depth + 100.0 * (1 - mask)  # junk outside the mask
    a, b, _ = plane_fit(depth, mask).unbind(-1)
    assert torch.allclose(a, torch.tensor([0.7, -1.3]), atol=1e-4)
    assert torch.allclose(b, torch.tensor([-0.2, 0.0]), atol=1e-4)
    flat = remove_plane(depth, mask)
    assert torch.allclose(plane_fit(flat, mask)[:, :2], torch.zeros(2, 2), atol=1e-4)


def test_plane_term_costs_a_tilt_and_fits_can_teach_shape_without_their_tilt() -> None:
    from df2net.model import MODEL_CONFIGS
    from df2net.train.losses import plane_l1

    model_config, size = MODEL_CONFIGS["cpu"], 64
    batch, _, _ = _region_batch(size)
    tilt = torch.linspace(-5.0, 5.0, size).view(1, 1, 1, size).expand(1, 1, size, size)
    tilted = batch["depth"] + tilt
    units = crop_pixels_to_units(tilted, model_config)
    target = crop_pixels_to_units(batch["depth"], model_config)
    # The plane term is the slope error in network units per half grid: 5 crop px.
    per = float(plane_l1(units, target, batch["mask"]))
    assert per == pytest.approx(5.0 * model_config.input_size / CROP_SIZE / model_config.depth_scale, rel=1e-3)
    cfg = LossConfig(depth=1.0, normal=0.0, plane=2.0)
    total, terms = stage_loss("dense", {"dense": units}, batch, model_config, cfg, grid=size)
    assert float(terms["plane"]) == pytest.approx(per, rel=1e-5)
    assert float(total) == pytest.approx(float(terms["depth"]) + 2.0 * per, rel=1e-5)
    # A fits sample: no plane term, and with fits_tilt_free its depth term does not see the tilt.
    fits = dict(batch, synthetic=torch.tensor([0.0]))
    _, plain = stage_loss("dense", {"dense": units}, fits, model_config, cfg, grid=size)
    assert float(plain["plane"]) == 0.0 and float(plain["depth"]) > 0.01
    free = LossConfig(depth=1.0, normal=0.0, plane=2.0, fits_tilt_free=True)
    _, shape_only = stage_loss("dense", {"dense": units}, fits, model_config, free, grid=size)
    assert float(shape_only["depth"]) < 1e-4
    # A synthetic sample keeps its tilt in the depth term either way.
    _, synth = stage_loss("dense", {"dense": units}, batch, model_config, free, grid=size)
    assert float(synth["depth"]) == pytest.approx(float(terms["depth"]), rel=1e-6)


# --------------------------------------------------------------------------- weight average


def test_weight_average_follows_the_arithmetic_and_round_trips() -> None:
    from df2net.train.ema import WeightAverage

    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in net.state_dict().items()}
    ema = WeightAverage(net, decay=0.9)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0): a fresh average follows closely
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update(net)
    expected = start["0.weight"] * 0.1 + (start["0.weight"] + 1.0) * 0.9
    assert torch.allclose(ema.state["0.weight"], expected)
    for _ in range(200):
        ema.update(net)
    assert ema.current_decay() == 0.9  # capped at the configured decay
    assert torch.allclose(ema.state["0.weight"], net[0].weight, atol=1e-6)  # converges to constant weights
    assert ema.state["1.num_batches_tracked"].dtype == torch.int64  # integer buffers copied, not averaged

    again = WeightAverage(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)), decay=0.9)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 201 and torch.equal(again.state["0.bias"], ema.state["0.bias"])
    other = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    again.copy_to(other)
    assert torch.equal(other[0].weight, ema.state["0.weight"])
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, decay=1.0)


def test_a_run_with_ema_exports_the_average_and_the_raw_weights_and_resumes_the_average(
    data_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from df2net.model import load_weights
    from df2net.train.loop import RAW_WEIGHTS, Trainer, train
    from df2net.train.stages import stage_of

    full = tmp_path / "full"
    cfg = dict(steps=6, checkpoint_every=3, ema_decay=0.5)
    weights = train(tiny_config(data_dirs, full, "dense", **cfg))
    avg, raw = load_weights(weights), load_weights(full / RAW_WEIGHTS)
    last = torch.load(full / "checkpoints" / "step_00000006.pt", weights_only=True)
    a, r = avg.model.state_dict(), raw.model.state_dict()
    trained = [k for k in a if stage_of(k) == "dense" and a[k].is_floating_point()]
    assert trained
    assert any(not torch.equal(a[k], r[k]) for k in trained)  # the average is not the last step
    for k in trained:
        assert torch.equal(r[k], last["model"][k]) and torch.allclose(a[k], last["ema"]["state"][k])
    assert avg.metadata["recipe"]["weight_average"] == {"ema_decay": 0.5, "ema_updates": 6}

    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_00000003.pt", part / "checkpoints")
    trainer = Trainer(tiny_config(data_dirs, part, "dense", **cfg), resume=True)
    assert trainer.ema is not None and trainer.ema.updates == 3
    trainer.run()
    trainer.close()
    resumed = torch.load(part / "checkpoints" / "step_00000006.pt", weights_only=True)["ema"]["state"]
    for k in trained:
        assert torch.equal(resumed[k], last["ema"]["state"][k]), k


def test_scores_in_micrometres_get_the_micrometre_axis() -> None:
    """A relief run logs ``false_relief_um`` and ``false_relief_um_mean`` (tens of µm) beside
    correlations under 1: both µm scores go on the right axis, or they squash the rest to a line."""
    from df2net.train.plots import in_micrometres

    assert in_micrometres("false_relief_um") and in_micrometres("false_relief_um_mean")
    assert not any(in_micrometres(k) for k in ("relief_r", "relief_r_mean", "relief_slope", "umbra", "sum", "loss"))
