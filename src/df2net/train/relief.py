"""Training the relief Fr-Net (:class:`~df2net.model.relief.ReliefNet`) on synthetic renders.

D-Net and F-Net stay frozen (they come from ``init``); their fine depth of every training image
is computed once, with the relief network's input features, and cached in memory. Then the
relief network trains on random patches:

- target (``mode="gate"``): where the true base surface is smooth (its local high-pass RMS,
  :func:`df2net.metrics.base_roughness`, under ``smooth_base_px``), ``hp(depth_true - fine)``,
  the detail band (below ``sigma``) of what F-Net got wrong there: the true relief it missed,
  minus the false relief it pressed in from the image's colour; elsewhere (nose, eyes, lips,
  where F-Net's structural error in that band is pixels, ten times the relief)
  ``hp(depth_true - base)``, the relief alone, so those errors do not drown the wrinkles;
- target (``mode="band"``): ``relief - (1 - k) s hp(fine - base)`` with the network's own fixed
  gate ``k`` (:func:`df2net.model.relief.band_gate`) and ``s`` the true base's smoothness as
  above: where F-Net's band is dropped the network puts back the base's band and the relief,
  elsewhere it adds the relief;
- loss: weighted squared error (a conditional mean: less shrinkage of uncertain grooves than L1's
  median) plus an L1 on its gradient; weights ``detail_boost`` near the relief and ``marks_boost``
  under albedo-only marks — the explicit penalty on relief where only colour changed;
- renders with marks train on both versions (marked and unmarked), so the same surface is seen
  with and without the paint; with ``pair_weight`` a share ``pair_share`` of each batch holds
  such pairs, the same patch of both versions, and the loss adds the squared difference of the
  two finer detail bands (F-Net's kept band plus the network's change) under the marks: the
  false relief itself, which the target term only reaches through its noisy mean.

Validation (``val`` dataset, marks on every face) reports the relief r / slope near the wrinkles
and the false relief under the marks (in the relief band), both from :mod:`df2net.metrics`, every
``val_every`` steps;
checkpoints every ``checkpoint_every`` steps and ``--resume`` continue a run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from df2net.model.relief import GATE_CHANNEL, HP_FINE_CHANNEL, LOG_CHANNELS, MIRROR_SIGN_CHANNELS, feature_mask, highpass, input_mask, relief_features
from df2net.train.checkpoints import load_checkpoint, write_checkpoint
from df2net.train.plots import plot_history
from df2net.train.schedule import warmup_cosine

__all__ = ["ReliefTrainConfig", "scan_gain", "train_relief"]


@dataclass
class ReliefTrainConfig:
    """One relief-training run (saved as ``RUN/config.json``)."""

    data: list[str]
    out: str
    init: str | None = None  # D+F weights (default: the shipped weights)
    val: str | None = None
    channels: tuple[int, ...] = (16, 32, 64)
    sigma: float = 4.0
    mode: str = "gate"  # a df2net.model.relief.RELIEF_MODES name
    # A weights file whose relief Fr-Net warm-starts this one (df2net.model.relief.warm_start).
    init_relief: str | None = None
    steps: int = 3000
    time_limit_min: float | None = None
    batch_size: int = 16
    patch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    gradient_weight: float = 0.5
    detail_boost: float = 3.0
    # F-Net's own detail band is replaced by the target where the true base's local high-pass RMS
    # is under the first value (px), kept (only the relief added) above the second; in between,
    # a linear blend. Near the nose, eye sockets and lips F's structural error is pixels.
    smooth_base_px: tuple[float, float] = (0.5, 1.0)
    border_px: int = 8  # the loss ignores this much of the mask border (one-sided high-pass)
    marks_boost: float = 4.0
    # Weight of the paired mark-invariance term (0: off) and the share of each batch's patches
    # spent on marked/unmarked pairs (each pair is two patches).
    pair_weight: float = 0.0
    pair_share: float = 0.5
    seed: int = 0
    threads: int | None = None
    checkpoint_every: int = 100
    val_every: int = 250
    val_samples: int = 8
    log_every: int = 25
    max_samples: int | None = None
    # Look for new complete samples in ``data`` this often (steps; 0: never), so a run can start
    # while its data is still being made.
    rescan_every: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> ReliefTrainConfig:
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown relief-training fields: {', '.join(unknown)}")
        for key in ("channels", "smooth_base_px"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass
class _Item:
    """One cached training image: features (C, S, S) f16, target (S, S) f16, weight (S, S) f16."""

    features: Tensor
    target: Tensor
    weight: Tensor
    box: tuple[int, int, int, int]  # y0, y1, x0, x1 of the face
    # On a marked image: the same render without its marks, and where the marks are (f16, dilated).
    twin: _Item | None = None
    marks: Tensor | None = None


def _load_chain(init: str | None) -> Any:
    from df2net.model.weights import load_model

    loaded = load_model(init)
    loaded.model.eval()
    return loaded


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=px) if px > 0 and mask.any() else mask


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, iterations=px) if px > 0 else mask


@torch.inference_mode()
def fine_depth_px(chain: Any, image: np.ndarray, mask: np.ndarray) -> Tensor:
    """F-Net's depth ``(1, 1, S, S)`` in crop pixels (no offset) and the network input of a crop."""
    from df2net.reconstruct import to_network_input

    cfg = chain.config
    x = to_network_input(image[None], mask[None], cfg.input_size)
    stages = chain.model.forward_stages(x, until="fine")
    return stages.fine * cfg.depth_scale, x


def _items_for_sample(chain: Any, folder: Path, cfg: ReliefTrainConfig) -> list[_Item]:
    from df2net.data.dataset import load_sample

    s = load_sample(folder)
    if "depth_base" not in s:
        return []
    mask = s["mask"] & (s["depth"] != 0)
    if mask.sum() < 2000:
        return []
    from df2net.metrics import ReliefConfig, base_roughness

    m_t = torch.from_numpy(mask.astype(np.float32))[None, None]
    depth = torch.from_numpy(s["depth"].astype(np.float32))[None, None]
    base = torch.from_numpy(s["depth_base"].astype(np.float32))[None, None]
    lo, hi = cfg.smooth_base_px
    smooth = np.clip((hi - base_roughness(s["depth_base"], mask, ReliefConfig())) / max(hi - lo, 1e-6), 0.0, 1.0)
    smooth_t = torch.from_numpy(smooth.astype(np.float32))[None, None]
    relief = highpass(depth - base, m_t, cfg.sigma)
    weight = _erode(mask, cfg.border_px).astype(np.float32)
    if "detail_mask" in s:
        weight = weight * np.where(_dilate(s["detail_mask"], 4), cfg.detail_boost, 1.0)
    if "marks_mask" in s:
        weight = weight * np.where(_dilate(s["marks_mask"], 2), cfg.marks_boost, 1.0)
    ys, xs = np.nonzero(mask)
    box = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    images = [s["image"]] + ([s["image_unmarked"]] if "image_unmarked" in s else [])
    items = []
    for image in images:
        fine, x = fine_depth_px(chain, image, mask)
        feats = relief_features(x, fine, cfg.sigma, cfg.mode)
        if cfg.mode == "band":
            # The change the network makes: the relief everywhere, and where F-Net's band is
            # dropped (k < 1) the base's own band in place of F-Net's -- where the true base is
            # smooth too: where it is not, F-Net missed structure (pixels) the image cannot give.
            target = relief - (1.0 - feats[:, GATE_CHANNEL : GATE_CHANNEL + 1]) * smooth_t * highpass(fine - base, m_t, cfg.sigma)
        else:
            target = relief - smooth_t * highpass(fine - base, m_t, cfg.sigma)
        items.append(
            _Item(
                features=feats[0].to(torch.float16),
                target=target[0, 0].to(torch.float16),
                weight=torch.from_numpy(weight.astype(np.float16)),
                box=box,
            )
        )
    if len(items) == 2 and "marks_mask" in s:
        items[0].twin = items[1]
        items[0].marks = torch.from_numpy((_dilate(s["marks_mask"], 2) & mask).astype(np.float16))
    return items


def _sample_folders(dirs: list[str]) -> list[Path]:
    from df2net.data.dataset import sample_complete

    out = []
    for d in dirs:
        out += [p for p in sorted(Path(d).iterdir()) if p.is_dir() and not p.name.startswith(".") and sample_complete(p, "synthetic")]
    return out


@dataclass
class _Batch:
    """Patches of a training batch; ``pairs`` index (marked, unmarked) patches of the same render."""

    features: Tensor
    mask: Tensor
    target: Tensor
    weight: Tensor
    pairs: list[tuple[int, int]]
    marks: Tensor | None  # (P, 1, p, p) where each pair's marks are


def _patch_corner(it: _Item, p: int, rng: np.random.Generator) -> tuple[int, int]:
    y0, y1, x0, x1 = it.box
    size = it.target.shape[-1]
    cy = int(rng.integers(max(y0 - p // 4, 0), max(min(y1 - p + p // 4, size - p), max(y0 - p // 4, 0)) + 1))
    cx = int(rng.integers(max(x0 - p // 4, 0), max(min(x1 - p + p // 4, size - p), max(x0 - p // 4, 0)) + 1))
    return min(cy, size - p), min(cx, size - p)


def _patch(it: _Item, corner: tuple[int, int], p: int, flip: bool, gamma: float, gain: float, mode: str) -> tuple[Tensor, Tensor, Tensor]:
    """Features, target and weight of one patch, mirrored if ``flip``, colour jittered."""
    cy, cx = corner
    f = it.features[:, cy : cy + p, cx : cx + p].float()
    t = it.target[cy : cy + p, cx : cx + p].float()
    w = it.weight[cy : cy + p, cx : cx + p].float()
    if flip:
        f, t, w = f.flip(-1), t.flip(-1), w.flip(-1)
        f[MIRROR_SIGN_CHANNELS[mode]] *= -1.0  # the x slope (and the shading's change with it) changes sign
    m = feature_mask(f[None])[0]
    rgb01 = ((f[:3] + 1.0) * 0.5).clamp(0, 1) ** gamma * gain
    f[:3] = (rgb01.clamp(0, 1) * 2.0 - 1.0) * m
    for c in LOG_CHANNELS[mode]:  # a gamma scales log-luminance, log-chromaticity and log-shading alike
        f[c] = f[c] * gamma
    return f, t, w


def _batch(items: list[_Item], cfg: ReliefTrainConfig, rng: np.random.Generator) -> _Batch:
    """A random batch of patches with flips and colour jitter; with ``pair_weight`` a share of
    it as marked/unmarked pairs (same patch, flip and jitter)."""
    p = cfg.patch_size
    paired = [it for it in items if it.twin is not None]
    n_pairs = min(int(round(cfg.batch_size * cfg.pair_share / 2)), cfg.batch_size // 2) if cfg.pair_weight > 0 and paired else 0
    feats, targets, weights, pairs, marks = [], [], [], [], []
    for i in range(cfg.batch_size - n_pairs):
        it = paired[int(rng.integers(len(paired)))] if i < n_pairs else items[int(rng.integers(len(items)))]
        corner = _patch_corner(it, p, rng)
        flip = bool(rng.uniform() < 0.5)
        gamma, gain = float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.8, 1.2))
        for one in (it, it.twin) if i < n_pairs else (it,):
            f, t, w = _patch(one, corner, p, flip, gamma, gain, cfg.mode)
            feats.append(f)
            targets.append(t)
            weights.append(w)
        if i < n_pairs:
            pairs.append((len(feats) - 2, len(feats) - 1))
            cy, cx = corner
            mk = it.marks[cy : cy + p, cx : cx + p].float()
            marks.append(mk.flip(-1) if flip else mk)
    feats_t = torch.stack(feats)
    return _Batch(
        features=feats_t,
        mask=feature_mask(feats_t),
        target=torch.stack(targets)[:, None],
        weight=torch.stack(weights)[:, None],
        pairs=pairs,
        marks=torch.stack(marks)[:, None] if marks else None,
    )


def pair_loss(pred: Tensor, hp_fine: Tensor, batch: _Batch) -> Tensor:
    """Mean square (px²) under the marks of what the marks change in the finer detail band
    (``hp_fine + pred``) between each pair's marked and unmarked patch; 0 without pairs."""
    if not batch.pairs or batch.marks is None:
        return pred.new_zeros(())
    band = (hp_fine + pred) * batch.mask
    a = torch.tensor([i for i, _ in batch.pairs])
    b = torch.tensor([j for _, j in batch.pairs])
    d = band[a] - band[b]
    m = batch.marks * batch.mask[a] * batch.mask[b]
    return (m * d * d).sum() / m.sum().clamp_min(1.0)


def _gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def relief_loss(pred: Tensor, target: Tensor, weight: Tensor, gradient_weight: float) -> tuple[Tensor, dict[str, float]]:
    """Weighted squared error plus a weighted L1 on the x/y gradients; all ``(B, 1, H, W)`` px."""
    wsum = weight.sum().clamp_min(1.0)
    mse = (weight * (pred - target) ** 2).sum() / wsum
    pgx, pgy = _gradients(pred)
    tgx, tgy = _gradients(target)
    wx = torch.minimum(weight[..., :, 1:], weight[..., :, :-1])
    wy = torch.minimum(weight[..., 1:, :], weight[..., :-1, :])
    grad = ((wx * (pgx - tgx).abs()).sum() + (wy * (pgy - tgy).abs()).sum()) / (wx.sum() + wy.sum()).clamp_min(1.0)
    total = mse * 10.0 + gradient_weight * grad
    return total, {"loss": total.item(), "mse": mse.item(), "grad_l1": grad.item()}


def _prepare(chain: Any, folders: list[Path], sigma: float, mode: str) -> list[tuple[dict, np.ndarray, dict]]:
    """Each validation sample with F-Net's depth and the relief features of its image(s)."""
    from df2net.data.dataset import load_sample

    prepared = []
    for folder in folders:
        s = load_sample(folder)
        mask = s["mask"] & (s["depth"] != 0)
        inputs = {}
        for key in ("image", "image_unmarked"):
            if key in s:
                fine, x = fine_depth_px(chain, s[key], mask)
                inputs[key] = (fine, relief_features(x, fine, sigma, mode), input_mask(x))
        prepared.append((s, mask, inputs))
    return prepared


@torch.inference_mode()
def _score(prepared: list[tuple[dict, np.ndarray, dict]], net: torch.nn.Module, sigma: float) -> dict[str, float]:
    """Median relief r, slope and false relief (µm) of ``fine + net`` on prepared samples, and the
    means of r and false relief (``*_mean``: what ``df2net evaluate`` and the shipping rule report)."""
    from df2net.metrics import align_depth, false_relief_um, relief_scores

    rs, slopes, false = [], [], []
    for s, mask, inputs in prepared:
        preds = {k: (f + net.forward_features(feats, m))[0, 0].numpy() for k, (f, feats, m) in inputs.items()}
        if "depth_base" in s and "detail_mask" in s:
            score = relief_scores(align_depth(preds["image"], s["depth"], mask), s["depth"], s["depth_base"], mask, s["detail_mask"])
            if np.isfinite(score.r):
                rs.append(score.r)
                slopes.append(score.slope)
        if "image_unmarked" in preds and "marks_mask" in s:
            v = false_relief_um(preds["image"], preds["image_unmarked"], mask, s["marks_mask"], float(s["params"]["px_per_mm"]), sigma_px=sigma)
            if np.isfinite(v):
                false.append(v)
    med = lambda v: float(np.median(v)) if v else float("nan")  # noqa: E731
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {
        "relief_r": med(rs), "relief_slope": med(slopes), "false_relief_um": med(false),
        "relief_r_mean": mean(rs), "false_relief_um_mean": mean(false),
    }


@torch.inference_mode()
def validate(chain: Any, net: torch.nn.Module, folders: list[Path], sigma: float) -> dict[str, float]:
    """Median relief r, slope and false relief (µm) of ``fine + net`` on validation renders."""
    return _score(_prepare(chain, folders, sigma, net.mode), net, sigma)


@torch.inference_mode()
def calibrate_gain(
    chain: Any,
    net: torch.nn.Module,
    folders: list[Path],
    sigma: float,
    gains: tuple[float, ...],
    max_false_um: float,
    false_key: str = "false_relief_um",
) -> tuple[float, list[dict[str, float]]]:
    """Pick the relief's output gain on validation renders: the one whose relief slope is nearest 1
    while the false relief under marks (``false_key``: the median, or ``false_relief_um_mean``)
    stays at most ``max_false_um``.

    Returns the gain and one row per gain (:func:`_score`'s). F-Net's depth and the features are
    computed once; only the relief network runs again per gain.
    """
    prepared = _prepare(chain, folders, sigma, net.mode)
    rows = []
    saved_gain = net.gain
    for g in gains:
        net.gain = float(g)  # scales the relief, not the gate
        rows.append({"gain": g, **_score(prepared, net, sigma)})
    net.gain = saved_gain
    ok = [r for r in rows if r[false_key] <= max_false_um] or rows[:1]
    best = min(ok, key=lambda r: abs(r["relief_slope"] - 1.0))
    return float(best["gain"]), rows


@torch.inference_mode()
def reference_scores(weights: str | Path, folders: list[Path], sigma: float) -> dict[str, float]:
    """:func:`_score` of a whole weights file (its own D, F, relief network and gain) on the same
    validation renders: the bar a new relief network's gain is held to."""
    chain = _load_chain(str(weights))
    net = chain.model.FrNet
    if getattr(chain.config, "finer_arch", None) != "relief":
        raise ValueError(f"{weights}: its finer stage is not a relief network; it cannot be a false-relief reference")
    return _score(_prepare(chain, folders, sigma, net.mode), net, sigma)


def scan_gain(
    run: str | Path,
    gains: tuple[float, ...],
    max_false_um: float,
    val: list[str] | None = None,
    reference: str | Path | None = None,
) -> Path:
    """Scan the output gain of a finished run's relief network on validation renders
    (:func:`calibrate_gain`); writes ``RUN/gain_calibration.json`` and
    ``RUN/final_calibrated.safetensors`` (the chosen gain), and returns the latter.

    ``val`` replaces the run's own validation folders. With ``reference`` (a weights file, such as
    the shipped one) the bound is that file's mean false relief on the same renders (or
    ``max_false_um`` if lower), and the means are compared: the new network may not put more of
    the marks into the surface than the reference does. (An absolute bound on a few renders moves
    with the renders: step 21's scan on 26 of them put a network 9 µm above the test set.)
    """
    run = Path(run)
    if not (run / "config.json").is_file() or not (run / "final.safetensors").is_file():
        raise ValueError(f"{run}: not a finished relief-training run (config.json and final.safetensors)")
    cfg = ReliefTrainConfig.load(run / "config.json")
    val_dirs = list(val) if val else ([cfg.val] if cfg.val else [])
    if not val_dirs:
        raise ValueError(f"{run}: the run has no validation renders (val) to scan the gain on")
    folders = _sample_folders(val_dirs)
    report: dict[str, Any] = {"gains": list(gains), "val": val_dirs}
    false_key = "false_relief_um"
    if reference is not None:
        ref = reference_scores(reference, folders, cfg.sigma)
        false_key = "false_relief_um_mean"
        max_false_um = min(max_false_um, ref[false_key])
        report["reference"] = {"weights": str(reference), **ref}
    loaded = _load_chain(str(run / "final.safetensors"))
    net = loaded.model.FrNet
    gain, rows = calibrate_gain(loaded, net, folders, cfg.sigma, gains, max_false_um, false_key)
    report.update({"max_false_um": max_false_um, "bound_on": false_key, "chosen": gain, "rows": rows})
    (run / "gain_calibration.json").write_text(json.dumps(report, indent=1))
    extra = {"gain_calibration": report}
    return export_weights(loaded, net, cfg, run / "final_calibrated.safetensors", extra=extra, gain=gain)


def _save_checkpoint(path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, step: int, elapsed: float, history: list) -> None:
    # The history travels as JSON text, so the checkpoint loads with weights_only=True.
    write_checkpoint(path, {"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed, "history": json.dumps(history)})


def export_weights(
    chain: Any, net: torch.nn.Module, cfg: ReliefTrainConfig, path: Path, extra: dict[str, Any] | None = None, gain: float = 1.0
) -> Path:
    """The full chain (init's D and F, this relief network, its output ``gain``) as a df2net weights file."""
    from df2net.model import build_model
    from df2net.model.weights import save_weights

    model_cfg = replace(
        chain.config,
        finer_arch="relief",
        finer_base="fine",
        relief_channels=tuple(cfg.channels),
        relief_sigma=cfg.sigma,
        relief_gain=float(gain),
        relief_mode=cfg.mode,
    )
    model = build_model(model_cfg)
    state = {k: v for k, v in chain.model.state_dict().items() if not k.startswith("FrNet.")}
    state.update({f"FrNet.{k}": v for k, v in net.state_dict().items()})
    model.FrNet.gain = float(gain)
    model.load_state_dict(state, strict=True)
    recipe = {"stage": "finer (relief)", "train_config": asdict(cfg), "init": str(cfg.init) if cfg.init else "shipped"}
    return save_weights(model, model_cfg, path, recipe=recipe, extra=extra)


def train_relief(cfg: ReliefTrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) one relief-training run; returns ``RUN/final.safetensors``."""
    from tqdm import tqdm

    from df2net.model.relief import ReliefNet

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    cfg.save(run / "config.json")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    chain = _load_chain(cfg.init)
    net = ReliefNet(tuple(cfg.channels), cfg.sigma, mode=cfg.mode)
    net.zero_detail()
    ckpt_path = run / "checkpoint.pt"
    if cfg.init_relief and not (resume and ckpt_path.is_file()):
        from df2net.model.relief import warm_start

        donor = _load_chain(cfg.init_relief)
        state = {k[len("FrNet.") :]: v for k, v in donor.model.state_dict().items() if k.startswith("FrNet.")}
        warm_start(net, state, donor.config.relief_mode)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, elapsed, history = 0, 0.0, []
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        net.load_state_dict(ckpt["net"])
        opt.load_state_dict(ckpt["opt"])
        step, elapsed, history = int(ckpt["step"]), float(ckpt["elapsed"]), list(json.loads(ckpt["history"]))
        rng = np.random.default_rng([cfg.seed, step])

    val_folders = _sample_folders([cfg.val])[: cfg.val_samples] if cfg.val else []
    items: list[_Item] = []
    seen: set[Path] = set()

    def add_new_samples(show: bool) -> None:
        new = [f for f in _sample_folders(cfg.data) if f not in seen and f.parent.resolve() != Path(cfg.val or "/nonexistent").resolve()]
        if cfg.max_samples is not None:
            new = new[: max(cfg.max_samples - len(seen), 0)]
        for folder in tqdm(new, desc="relief: caching F-Net depth", unit="sample", disable=not (progress and show)):
            items.extend(_items_for_sample(chain, folder, cfg))
            seen.add(folder)
        (run / "data.json").write_text(json.dumps({"samples": len(seen), "images": len(items)}))

    add_new_samples(True)
    if not items:
        raise ValueError(f"no usable synthetic samples (with depth_base) in {cfg.data}")

    t_start = time.perf_counter() - elapsed
    limit_s = cfg.time_limit_min * 60.0 if cfg.time_limit_min else None
    bar = tqdm(total=cfg.steps, initial=step, desc="relief: training", unit="step", disable=not progress)
    running: dict[str, list[float]] = {}
    net.train()
    while step < cfg.steps:
        elapsed = time.perf_counter() - t_start
        if limit_s is not None and elapsed >= limit_s:
            break
        share = max(step / cfg.steps, elapsed / limit_s if limit_s else 0.0)
        for g in opt.param_groups:
            g["lr"] = float(cfg.lr * warmup_cosine(step, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio, share))
        batch = _batch(items, cfg, rng)
        mask = batch.mask
        pred = net.forward_features(batch.features, mask)
        loss, parts = relief_loss(pred, batch.target * mask, batch.weight * mask, cfg.gradient_weight)
        if cfg.pair_weight > 0:
            c = HP_FINE_CHANNEL[cfg.mode]
            pair = pair_loss(pred, batch.features[:, c : c + 1], batch)
            loss = loss + 10.0 * cfg.pair_weight * pair
            parts.update(loss=loss.item(), pair_mse=pair.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        for k, v in parts.items():
            running.setdefault(k, []).append(v)
        if step % cfg.log_every == 0:
            entry = {"step": step, "time_min": (time.perf_counter() - t_start) / 60, **{k: float(np.mean(v)) for k, v in running.items()}}
            running = {}
            if val_folders and (step % cfg.val_every == 0):
                net.eval()
                entry.update(validate(chain, net, val_folders, cfg.sigma))
                net.train()
                bar.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}))
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.4f}")
        if step % cfg.checkpoint_every == 0:
            _save_checkpoint(ckpt_path, net, opt, step, time.perf_counter() - t_start, history)
        if cfg.rescan_every and step % cfg.rescan_every == 0:
            before = len(seen)
            add_new_samples(False)
            if len(seen) > before:
                bar.write(f"relief: {len(seen) - before} new sample(s), {len(seen)} in all ({len(items)} images)")
    bar.close()
    elapsed = time.perf_counter() - t_start
    _save_checkpoint(ckpt_path, net, opt, step, elapsed, history)
    net.eval()
    final_val = validate(chain, net, val_folders, cfg.sigma) if val_folders else {}
    (run / "history.json").write_text(json.dumps(history, indent=0))
    (run / "final_validation.json").write_text(json.dumps(final_val, indent=1))
    plot_history(history, run / "loss_curve.png", title=f"relief Fr-Net ({run.name})")
    extra = {"training": {"steps": step, "minutes": round(elapsed / 60, 2), "images": len(items), "validation": final_val}}
    return export_weights(chain, net, cfg, run / "final.safetensors", extra=extra)
