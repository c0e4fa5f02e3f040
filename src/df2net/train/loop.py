"""The training loop: one stage of DF2Net on dataset folders, single-process or under torchrun.

:func:`train` runs a :class:`TrainConfig` and returns the exported weights. A run folder holds::

    RUN/config.json            the TrainConfig (what --resume reads back)
    RUN/checkpoints/step_*.pt  model + optimiser + scheduler + step + RNG (tensors and primitives
                               only, loaded with torch.load(weights_only=True)); the last few kept
    RUN/history.json           logged loss averages, one entry per log interval
    RUN/loss_curve.png         the same, plotted (rewritten at every log interval)
    RUN/samples/step_*.png     input | target depth | predicted depth | predicted normals | target normals
    RUN/tb/                    TensorBoard events (when tensorboard is installed)
    RUN/final.safetensors      the weights, with the recipe in their metadata

Stages (which parameters train; the others are frozen, in eval mode):

- ``dense``: D-Net (the top-level layers), on ``depth_base`` (no detail);
- ``fine``: F-Net, fed by the frozen D-Net (run under ``no_grad``), on ``depth`` with detail;
- ``finer``: Fr-Net, D-Net and F-Net frozen, supervised detail plus the shading loss.

Chain stages with ``init``: the weights a previous stage exported.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import random
import re
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from df2net.config import CROP_SIZE
from df2net.io import atomic_path, write_bytes_atomic, write_text_atomic
from df2net.model import MODEL_CONFIGS, DF2Net, ModelConfig, build_model, load_weights, save_weights
from df2net.train import distributed as dist_utils
from df2net.train.config import CONFIG_FILE, TrainConfig
from df2net.train.datasets import MixedBatchSampler, TrainingSet
from df2net.train.losses import pair_loss, stage_loss, units_to_grid_pixels

CHECKPOINT_DIR = "checkpoints"
#: The model config of a run that names none and starts from no weights.
DEFAULT_MODEL = "cpu"
FINAL_WEIGHTS = "final.safetensors"
_CKPT_RE = re.compile(r"^step_(\d+)\.pt$")

#: Parameter-name prefixes of the sub-networks held by :class:`DF2Net`.
_SUBNETS = {"fine": "FNet.", "finer": "FrNet."}


# ------------------------------------------------------------------------ model pieces


def stage_parameters(model: DF2Net, stage: str) -> list[nn.Parameter]:
    """Freeze everything outside ``stage``'s sub-network; return the parameters that train.

    ``dense`` trains the top-level D-Net layers, ``fine`` ``model.FNet``, ``finer``
    ``model.FrNet``. Parameters frozen by the model itself (Fr-Net's unused layers) stay frozen.
    """
    if stage not in ("dense", "fine", "finer"):
        raise ValueError(f"unknown stage {stage!r}")
    prefixes = tuple(_SUBNETS.values())
    trainable = []
    for name, p in model.named_parameters():
        if not hasattr(p, "_df2net_frozen_by_model"):
            p._df2net_frozen_by_model = not p.requires_grad  # type: ignore[attr-defined]
        mine = name.startswith(_SUBNETS[stage]) if stage in _SUBNETS else not name.startswith(prefixes)
        p.requires_grad_(mine and not p._df2net_frozen_by_model)  # type: ignore[attr-defined]
        if p.requires_grad:
            trainable.append(p)
    return trainable


def set_stage_modes(model: DF2Net, stage: str) -> None:
    """Training mode for the stage's sub-network, eval mode (fixed batch norm, no dropout) elsewhere."""
    model.train(stage == "dense")
    model.FNet.train(stage == "fine")
    model.FrNet.train(stage == "finer")


class StageNet(nn.Module):
    """The part of the chain one stage needs, as a module DDP can wrap.

    ``forward(x (B, 3, R, R))`` returns a dict of depths in network units, all on the stage's
    grid: ``{"dense"}`` for the dense stage and ``{"dense", "fine"}`` for the fine stage (D-Net
    and F-Net run directly at their native side ``R``, as inside :meth:`DF2Net.forward_stages`),
    ``{"dense", "fine", "finer"}`` for the finer stage (the whole chain at ``R``).
    """

    def __init__(self, model: DF2Net, stage: str) -> None:
        super().__init__()
        self.model = model
        self.stage = stage
        self._until = "until" in inspect.signature(model.forward_stages).parameters

    def forward(self, x: Tensor, windows: Tensor | None = None) -> dict[str, Tensor]:
        m = self.model
        if windows is not None:
            if self.stage != "finer":
                raise ValueError("patch windows are for the finer stage only")
            with torch.no_grad():
                stages = m.forward_stages(x, until="fine")
            size = int(windows[0, 2])
            dense, fine, colour = (crop_windows(t, windows, size) for t in (stages.dense, stages.fine, x))
            base = dense if m.config.finer_base == "dense" else fine
            return {"dense": dense, "fine": fine, "finer": base + m.config.finer_gain * m.FrNet(fine, colour)}
        if self.stage == "dense":
            return {"dense": m.dense_depth(x)}
        if self.stage == "fine":
            with torch.no_grad():
                dense = m.dense_stage(x)
            return {"dense": dense, "fine": m.FNet(dense, x)}
        stages = m.forward_stages(x, until="finer") if self._until else m.forward_stages(x)
        return {"dense": stages.dense.detach(), "fine": stages.fine.detach(), "finer": stages.finer}


def crop_windows(t: Tensor, windows: Tensor, size: int) -> Tensor:
    """Cut ``(B, C, size, size)`` from ``t (B, C, H, W)``: sample ``i`` at row ``windows[i, 0]``, column ``windows[i, 1]``."""
    return torch.stack([t[i, :, int(y) : int(y) + size, int(x) : int(x) + size] for i, (y, x, _) in enumerate(windows)])


def patch_windows(face_mask: Tensor, size: int, rng: np.random.Generator) -> Tensor:
    """One ``size``-square window per sample, centred on a random face pixel: ``(B, 3)`` rows ``(y, x, size)``.

    ``face_mask (B, 1, H, W)``; a sample without face pixels gets a window at a random place.
    """
    b, _, h, w = face_mask.shape
    rows = []
    for i in range(b):
        ys, xs = torch.nonzero(face_mask[i, 0] > 0.5, as_tuple=True)
        if ys.numel():
            k = int(rng.integers(ys.numel()))
            cy, cx = int(ys[k]), int(xs[k])
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0 = min(max(cy - size // 2, 0), h - size)
        x0 = min(max(cx - size // 2, 0), w - size)
        rows.append((y0, x0, size))
    return torch.tensor(rows, dtype=torch.int64)


def stage_side(stage: str, model_config: ModelConfig, train_size: int) -> int:
    """Side of the grid a stage trains on: D-Net's and F-Net's native side, or ``train_size``."""
    cfg = model_config
    if train_size * cfg.dense_size % cfg.input_size:
        raise ValueError(f"train_size {train_size} does not scale to a whole dense side for model {cfg.name!r}")
    dense = train_size * cfg.dense_size // cfg.input_size
    if dense % 256 or train_size % 4:
        raise ValueError(
            f"train_size {train_size} does not fit model {cfg.name!r}: D-Net would run at {dense}, "
            "not a multiple of 256 (use a train_size with train_size * dense_size / input_size = 256 k)"
        )
    return dense if stage in ("dense", "fine") else train_size


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float, progress: float = 0.0) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine to ``min_ratio``.

    ``progress`` in [0, 1] (e.g. the share of a time budget used) moves the cosine on when it is
    further along than the steps are.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, max((step - warmup) / span, progress))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


# ------------------------------------------------------------------------ checkpoints


def checkpoint_files(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the run's checkpoints, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _CKPT_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's newest checkpoint, or None."""
    files = checkpoint_files(run_dir)
    return files[-1][1] if files else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's content (``weights_only=True``: tensors and primitive types only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _rng_state(device: torch.device) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ------------------------------------------------------------------------ pictures


def _colormap(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` in [0, 1] to ``(H, W, 3)`` uint8 (viridis when matplotlib is there, else grey)."""
    v = np.clip(np.nan_to_num(values), 0.0, 1.0)
    try:
        from matplotlib import colormaps

        return (colormaps["viridis"](v)[..., :3] * 255.0 + 0.5).astype(np.uint8)
    except ImportError:  # pragma: no cover
        g = (v * 255.0 + 0.5).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)


def _normals_rgb(normals: Tensor, mask: Tensor) -> np.ndarray:
    n = normals.permute(1, 2, 0).numpy()
    rgb = np.clip((n + 1.0) * 0.5 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb[mask[0].numpy() < 0.5] = 0
    return rgb


def sample_sheet(
    batch: dict[str, Tensor],
    pred: dict[str, Tensor],
    stage: str,
    model_config: ModelConfig,
    rows: int = 4,
    grid: int | None = None,
) -> np.ndarray:
    """A picture of predictions: one row per sample, ``(rows * S, 5 * S, 3)`` uint8.

    Columns: network input | target depth | predicted depth (both colour-mapped over the
    target's range inside the mask, offsets aligned) | predicted normals | target normals.
    ``grid``: side of the whole map the tensors were cut from (patch training; default ``S``).
    """
    from df2net.geometry import depth_to_normals_torch

    out = pred[stage].detach().float().cpu()
    grid = grid or out.shape[-1]
    target_key = "depth_base" if stage == "dense" else "depth"
    lines = []
    for i in range(min(rows, out.shape[0])):
        mask = batch["mask"][i].cpu()
        m = mask[0].numpy() > 0.5
        tgt = (batch[target_key][i].cpu() * (grid / CROP_SIZE))[None]
        prd = units_to_grid_pixels(out[i : i + 1], model_config, grid)
        inp = ((batch["input"][i].cpu().permute(1, 2, 0).numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
        t_np, p_np = tgt[0, 0].numpy(), prd[0, 0].numpy()
        if m.any():
            lo, hi = float(t_np[m].min()), float(t_np[m].max())
            p_np = p_np - p_np[m].mean() + t_np[m].mean()
        else:
            lo, hi = 0.0, 1.0
        span = max(hi - lo, 1e-6)
        cols = [inp]
        for d in (t_np, p_np):
            c = _colormap((d - lo) / span)
            c[~m] = 0
            cols.append(c)
        mb = (mask > 0.5)[None]
        cols.append(_normals_rgb(depth_to_normals_torch(prd, mb)[0], mask))
        cols.append(_normals_rgb(depth_to_normals_torch(tgt, mb)[0], mask))
        lines.append(np.concatenate(cols, axis=1))
    return np.concatenate(lines, axis=0)


def _png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


#: History entries that are bookkeeping, not curves.
_NOT_PLOTTED = ("step", "lr", "s_per_step", "time_min")


def plot_history(history: list[dict[str, float]], path: str | Path, title: str = "") -> bool:
    """Plot a run's history as a PNG; False without matplotlib.

    The terms every entry logs (the losses) go on a log scale against the step; the terms only
    some entries hold (validation scores, logged every few intervals) go in a second panel
    below, as points joined by lines, those in micrometres (``*_um``) on their own right axis.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    first = history[0] if history else {}
    losses = [k for k in first if k not in _NOT_PLOTTED]
    later: list[str] = []
    for h in history:
        later += [k for k in h if k not in first and k not in _NOT_PLOTTED and k not in later]
    fig = Figure(figsize=(8, 7.0 if later else 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(2 if later else 1, 1, 1)
    steps = [h["step"] for h in history]
    for key in losses:
        ys = [h.get(key, float("nan")) for h in history]
        ax.plot(steps, ys, label=key, linewidth=2.0 if key in ("total", "loss") else 1.0)
    if losses and all(h.get(k, 1.0) > 0 for h in history for k in losses):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if losses:
        ax.legend(loc="upper right", fontsize=8)
    if later:
        val = fig.add_subplot(2, 1, 2, sharex=ax)
        um = val.twinx() if any(k.endswith("_um") for k in later) else None
        for i, key in enumerate(later):
            pts = [(h["step"], h[key]) for h in history if key in h]
            target = um if (um is not None and key.endswith("_um")) else val
            target.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, color=f"C{i}", label=key)
        val.set_xlabel("step")
        val.set_ylabel("validation")
        val.grid(True, alpha=0.3)
        handles, labels = val.get_legend_handles_labels()
        if um is not None:
            um.set_ylabel("µm")
            h2, l2 = um.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        val.legend(handles, labels, loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes_atomic(path, buf.getvalue())
    return True


def transplant(state: dict[str, Tensor], model: torch.nn.Module) -> list[str]:
    """Copy into ``model`` every tensor of ``state`` whose name and shape it shares.

    Returns the names of ``model``'s tensors left as initialised (absent or of another shape).
    """
    target = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return [k for k in target if k not in fitting]


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


# ------------------------------------------------------------------------ the trainer


class Trainer:
    """Runs one :class:`TrainConfig`: build, (resume,) loop, log, checkpoint, export.

    Usable piecewise (``Trainer(cfg).run()`` is :func:`train`); ``model`` is the bare
    :class:`DF2Net` being trained, ``step`` the number of optimiser steps done.
    """

    def __init__(self, config: TrainConfig, resume: bool = False, info: dist_utils.DistInfo | None = None) -> None:
        self.config = config
        self.info = info or dist_utils.setup(config.device)
        self.device = self.info.device
        self.run_dir = Path(config.out)
        self.stage = config.stage
        self._warned: set[str] = set()

        if config.threads:
            torch.set_num_threads(config.threads)
        ckpt_path = latest_checkpoint(self.run_dir) if resume else None
        if not resume and checkpoint_files(self.run_dir):
            raise FileExistsError(
                f"{self.run_dir}: the run folder already holds checkpoints; resume it or choose another output folder"
            )
        ckpt = load_checkpoint(ckpt_path) if ckpt_path else None

        torch.manual_seed(config.seed)
        self.model, self.model_config, self.init_metadata = self._build_model(ckpt)
        if config.zero_detail and ckpt is None:
            self.model.FrNet.zero_detail()
        self.model.to(self.device)
        self.params = stage_parameters(self.model, self.stage)
        if not self.params:
            raise ValueError(f"stage {self.stage!r} has no trainable parameters")
        self.train_size = config.train_size or self.model_config.input_size
        self.side = stage_side(self.stage, self.model_config, self.train_size)
        if config.patch_size and config.patch_size > self.side:
            raise ValueError(f"patch_size {config.patch_size} is larger than the training side {self.side}")
        self.last_batch: dict[str, Tensor] = {}

        self.optimizer = torch.optim.Adam(
            self.params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        total, warmup, floor = config.steps, config.warmup_steps, config.min_lr_ratio
        #: Share of ``time_limit_min`` spent (0 without a limit), agreed across ranks.
        self.time_used = 0.0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, warmup, total, floor, self.time_used)
        )
        self.step = 0
        self.wall_s = 0.0
        self.history: list[dict[str, float]] = []
        self.last_terms: dict[str, float] = {}
        # Dropout differs between ranks; everything else random is keyed by (seed, step, slot).
        torch.manual_seed(config.seed * 1000 + 1 + self.info.rank)
        if ckpt is not None:
            self._restore(ckpt)
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config.save(self.run_dir / CONFIG_FILE)

        if config.dropout is not None:
            for module in self.model.modules():
                if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                    module.p = config.dropout
        self.net = dist_utils.wrap(StageNet(self.model, self.stage), self.info)
        set_stage_modes(self.model, self.stage)
        losses = config.losses
        self.dataset = TrainingSet(
            config.data,
            self.side,
            config.augment,
            seed=config.seed,
            cache_bytes=config.cache_mb * 2**20,
            twins=bool(losses.pair or losses.pair_band) and self.stage in ("dense", "fine"),
        )
        self.writer = self._tensorboard() if self.info.is_main else None

    # ---------------------------------------------------------------- setup

    def _build_model(self, ckpt: dict[str, Any] | None) -> tuple[DF2Net, ModelConfig, dict[str, Any]]:
        cfg = self.config
        metadata: dict[str, Any] = {}
        if ckpt is not None:  # the checkpoint says which network this run trains
            model_config = ModelConfig.from_dict(ckpt["model_config"])
            model = build_model(model_config)
            if cfg.init:
                metadata = dict(load_weights(cfg.init).metadata)
            return model, model_config, metadata
        if cfg.model and cfg.model not in MODEL_CONFIGS:
            raise ValueError(f"unknown model config {cfg.model!r} (known: {', '.join(sorted(MODEL_CONFIGS))})")
        if cfg.init:
            loaded = load_weights(cfg.init)
            # Overrides apply to the named config, or else to the init's own (its units included).
            asked = replace(MODEL_CONFIGS[cfg.model] if cfg.model else loaded.config, **cfg.model_overrides)
            metadata = dict(loaded.metadata)
            if asked == loaded.config:
                return loaded.model, loaded.config, metadata
            # Another network than the init's: carry over every tensor that still fits.
            model = build_model(asked)
            fresh = transplant(loaded.model.state_dict(), model)
            changed = [f.name for f in fields(ModelConfig) if getattr(asked, f.name) != getattr(loaded.config, f.name)]
            shown = ", ".join(fresh[:4]) + (" ..." if len(fresh) > 4 else "")
            self._warn(
                f"the init weights' model config differs from the one asked in {', '.join(changed)}; "
                f"training the asked one, {len(fresh)} tensors start fresh" + (f" ({shown})" if fresh else "")
            )
            return model, asked, metadata
        name = cfg.model or DEFAULT_MODEL
        model_config = replace(MODEL_CONFIGS[name], **cfg.model_overrides)
        if self.stage != "dense":
            self._warn(f"training the {self.stage} stage without init weights: the earlier stages are untrained")
        return build_model(model_config), model_config, metadata

    def _restore(self, ckpt: dict[str, Any]) -> None:
        saved = ckpt.get("config", {})
        if saved.get("stage", self.stage) != self.stage:
            raise ValueError(f"checkpoint is of stage {saved.get('stage')!r}, not {self.stage!r}")
        self.model.load_state_dict(ckpt["model"], strict=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.step = int(ckpt["step"])
        self.wall_s = float(ckpt.get("wall_s", 0.0))
        self.time_used = self._time_share()
        self.history = [dict(h) for h in ckpt.get("history", [])]
        if self.history:
            skip = ("step", "lr", "s_per_step")
            self.last_terms = {k: v for k, v in self.history[-1].items() if k not in skip}
        rngs = ckpt.get("rng", [])
        if self.info.rank < len(rngs):
            _set_rng_state(rngs[self.info.rank], self.device)

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self._warn("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
            return None
        return SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=self.step or None)

    def _warn(self, message: str) -> None:
        if message not in self._warned and self.info.is_main:
            self._warned.add(message)
            warnings.warn(message, stacklevel=3)

    def loader(self) -> torch.utils.data.DataLoader:
        """The batches of the remaining steps, this rank's slice of each."""
        cfg = self.config
        sampler = MixedBatchSampler(
            self.dataset.sizes,
            self.dataset.weights,
            cfg.batch_size,
            steps=cfg.steps,
            seed=cfg.seed,
            start=self.step,
            rank=self.info.rank,
            world_size=self.info.world_size,
        )
        workers = cfg.num_workers
        # Its own generator, so that starting the loader does not draw from the global RNG
        # (dropout's): a resumed run then repeats an uninterrupted one exactly.
        generator = torch.Generator().manual_seed(cfg.seed * 7919 + self.step)
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_worker_init if workers else None,
            prefetch_factor=2 if workers else None,
            generator=generator,
        )

    # ---------------------------------------------------------------- one step

    def _add_twins(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor | None]:
        """The batch with the unmarked twins of up to ``ceil(batch_size * pair_share)`` samples appended.

        Returns the extended batch (twins after the originals, each with its original's targets)
        and the indices of the originals that brought one (None when the run has no pair terms).
        """
        if "input_twin" not in batch:
            return batch, None
        has = torch.nonzero(batch["has_twin"] > 0).flatten()
        idx = has[: math.ceil(self.config.batch_size * self.config.pair_share)]
        out = {}
        for key, value in batch.items():
            if key in ("input_twin", "has_twin"):
                continue
            extra = batch["input_twin"][idx] if key == "input" else value[idx]
            out[key] = torch.cat([value, extra])
        return out, idx

    def _pair_terms(self, pred: dict[str, Tensor], batch: dict[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
        """``pair`` and ``pair_band`` (batch means) between the originals ``idx`` and their appended twins."""
        cfg = self.config.losses
        n = idx.numel()
        out_px = units_to_grid_pixels(pred[self.stage], self.model_config, self.side)
        whole, band = pair_loss(
            out_px[idx],
            out_px[-n:],
            batch["face_mask"][-n:],
            batch["marks_mask"][-n:],
            cfg.pair_sigma_px * self.side / CROP_SIZE,
            cfg.pair_marks_boost,
        )
        return {"pair": whole.mean(), "pair_band": band.mean()}

    def train_step(self, batch: dict[str, Tensor]) -> tuple[dict[str, float], dict[str, Tensor]]:
        """One optimiser step on a batch; returns the loss terms and the (detached) predictions."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        batch, twins = self._add_twins(batch)
        amp = self.config.amp and self.device.type == "cuda"
        windows = None
        if self.config.patch_size:
            rng = np.random.default_rng([self.config.seed, self.step, 7])
            windows = patch_windows(batch["face_mask"].cpu(), self.config.patch_size, rng)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            pred = self.net(batch["input"]) if windows is None else self.net(batch["input"], windows)
        pred = {k: v.float() for k, v in pred.items()}
        if windows is not None:
            batch = {
                k: crop_windows(v, windows, self.config.patch_size) if v.ndim == 4 else v for k, v in batch.items()
            }
        self.last_batch = batch
        total, terms = stage_loss(self.stage, pred, batch, self.model_config, self.config.losses, grid=self.side)
        if twins is not None and twins.numel():
            cfg = self.config.losses
            pair = self._pair_terms(pred, batch, twins)
            total = total + cfg.pair * pair["pair"] + cfg.pair_band * pair["pair_band"]
            terms.update(pair)
        finite = torch.isfinite(total).float()
        if self.info.distributed:  # every rank must agree to step, or DDP would hang
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        self.optimizer.zero_grad(set_to_none=True)
        if finite.item() < 1:
            self._bad_steps = getattr(self, "_bad_steps", 0) + 1
            if self._bad_steps > 10:
                raise FloatingPointError(f"loss not finite for {self._bad_steps} steps in a row (step {self.step})")
            self._warn("non-finite loss: step skipped")
        else:
            self._bad_steps = 0
            total.backward()
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        values = {k: float(v.detach()) for k, v in terms.items()}
        values["total"] = float(total.detach())
        return values, {k: v.detach() for k, v in pred.items()}

    # ---------------------------------------------------------------- the loop

    def _time_share(self) -> float:
        """Share of the time budget spent so far (rank 0's clock decides, so ranks agree)."""
        limit = self.config.time_limit_min
        if not limit:
            return 0.0
        share = torch.tensor([self.wall_s / (60.0 * limit)], dtype=torch.float64)
        if self.info.distributed:
            share = share.to(self.device)
            torch.distributed.broadcast(share, src=0)
        return float(share.item())

    def _refresh_lr(self) -> None:
        """Re-apply the schedule at the current step (after ``time_used`` moved on)."""
        sched = self.scheduler
        for group, base, factor in zip(self.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
            group["lr"] = base * factor(sched.last_epoch)

    def run(self) -> Path:
        """Train to ``config.steps`` (or the time limit); export and return ``RUN/final.safetensors``."""
        from tqdm import tqdm

        cfg = self.config
        sums: dict[str, float] = defaultdict(float)
        count = 0
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            desc=f"train {self.stage}",
            unit="step",
            disable=not self.info.is_main,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        t_interval = time.perf_counter()
        t_last = t_interval
        try:
            for batch in self.loader():
                values, pred = self.train_step(batch)
                now = time.perf_counter()
                self.wall_s += now - t_last
                t_last = now
                if cfg.time_limit_min:
                    self.time_used = self._time_share()
                    self._refresh_lr()
                for k, v in values.items():
                    sums[k] += v
                count += 1
                bar.update(1)
                bar.set_postfix(loss=f"{values['total']:.4f}", refresh=False)
                last = self.step >= cfg.steps or self.time_used >= 1.0
                if self.step % cfg.log_every == 0 or last:
                    means = dist_utils.mean_across({k: v / count for k, v in sums.items()}, self.info)
                    per_step = (time.perf_counter() - t_interval) / count
                    self._log(means, per_step)
                    sums.clear()
                    count = 0
                    t_interval = time.perf_counter()
                if self.info.is_main and (self.step % cfg.sample_every == 0 or last):
                    self._write_samples(self.last_batch, pred)
                if self.step % cfg.checkpoint_every == 0 or last:
                    self.save_checkpoint()
                t_last = time.perf_counter()
                if last:
                    break
        finally:
            bar.close()
        if self.step < cfg.steps and self.info.is_main:
            print(
                f"train {self.stage}: time limit of {cfg.time_limit_min:g} min reached at step {self.step} "
                f"of {cfg.steps}",
                file=sys.stderr,
            )
        return self.export()

    def _log(self, means: dict[str, float], per_step: float) -> None:
        entry = {"step": float(self.step), "lr": float(self.optimizer.param_groups[0]["lr"]), "s_per_step": per_step}
        entry.update(means)
        self.history.append(entry)
        self.last_terms = dict(means)
        if not self.info.is_main:
            return
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"loss/{k}", v, self.step)
            self.writer.add_scalar("lr", entry["lr"], self.step)
            self.writer.add_scalar("s_per_step", per_step, self.step)
            self.writer.flush()
        write_text_atomic(self.run_dir / "history.json", json.dumps(self.history, indent=1) + "\n")
        plot_history(
            self.history, self.run_dir / "loss_curve.png", title=f"{self.stage} stage ({self.model_config.name})"
        )

    def _write_samples(self, batch: dict[str, Tensor], pred: dict[str, Tensor]) -> None:
        sheet = sample_sheet(batch, pred, self.stage, self.model_config, grid=self.side)
        write_bytes_atomic(self.run_dir / "samples" / f"step_{self.step:08d}.png", _png_bytes(sheet))
        if self.writer is not None:
            self.writer.add_image("samples", sheet, self.step, dataformats="HWC")

    def save_checkpoint(self) -> Path | None:
        """Write ``RUN/checkpoints/step_N.pt`` atomically (rank 0) and prune old ones."""
        rngs = dist_utils.gather_objects(_rng_state(self.device), self.info)
        path = None
        if self.info.is_main:
            ckpt = {
                "step": self.step,
                "wall_s": self.wall_s,
                "stage": self.stage,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "model_config": {k: getattr(self.model_config, k) for k in self.model_config.__dataclass_fields__},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rngs,
                "history": self.history,
                "config": self.config.to_dict(),
            }
            path = self.run_dir / CHECKPOINT_DIR / f"step_{self.step:08d}.pt"
            with atomic_path(path) as tmp:
                torch.save(ckpt, tmp)
            for _, old in checkpoint_files(self.run_dir)[: -max(1, self.config.keep_checkpoints)]:
                old.unlink(missing_ok=True)
        dist_utils.barrier(self.info)
        return path

    def export(self, path: str | Path | None = None) -> Path:
        """Write the weights with their recipe (rank 0); every rank returns the path."""
        dist_utils.broadcast_buffers(self.model, self.info)
        path = Path(path) if path else self.run_dir / FINAL_WEIGHTS
        if self.info.is_main:
            recipe = {
                "stage": self.stage,
                "train_config": self.config.to_dict(),
                "steps": self.step,
                "wall_time_s": round(self.wall_s, 2),
                "world_size": self.info.world_size,
                "final_losses": self.last_terms,
                "previous": self.init_metadata.get("recipe"),
            }
            extra = {"trained_stage": self.stage}
            if self.init_metadata.get("sha256"):
                extra["init_sha256"] = self.init_metadata["sha256"]
            save_weights(self.model, self.model_config, path, recipe=recipe, extra=extra)
            summary = {
                "weights": str(path),
                "steps": self.step,
                "wall_time_s": self.wall_s,
                "final_losses": self.last_terms,
            }
            write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        dist_utils.barrier(self.info)
        return path

    def close(self) -> None:
        """Flush logs."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run ``config`` (continuing from the run folder's latest checkpoint if ``resume``).

    Returns the path of the exported weights (``RUN/final.safetensors``).
    """
    trainer = Trainer(config, resume=resume)
    try:
        return trainer.run()
    finally:
        trainer.close()


__all__ = [
    "StageNet",
    "Trainer",
    "checkpoint_files",
    "latest_checkpoint",
    "load_checkpoint",
    "plot_history",
    "sample_sheet",
    "set_stage_modes",
    "stage_parameters",
    "stage_side",
    "train",
    "warmup_cosine",
]
