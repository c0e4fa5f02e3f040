"""The network one stage trains: where it starts, which parameters move, what it computes, on which grid.

Stages (which parameters train; the others are frozen, in eval mode):

- ``dense``: D-Net (the top-level layers), on ``depth_base`` (no detail);
- ``fine``: F-Net, fed by the frozen D-Net (run under ``no_grad``), on ``depth`` with detail;
- ``finer``: Fr-Net, D-Net and F-Net frozen, supervised detail plus the shading loss.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from df2net.model import MODEL_CONFIGS, DF2Net, ModelConfig, build_model, load_weights
from df2net.model.df2net import stage_of
from df2net.model.widen import widen_dense
from df2net.train.config import TrainConfig

__all__ = [
    "DEFAULT_MODEL",
    "StageNet",
    "crop_windows",
    "initial_model",
    "patch_windows",
    "set_stage_modes",
    "stage_parameters",
    "stage_side",
    "transplant",
]

#: The model config of a run that names none and starts from no weights.
DEFAULT_MODEL = "cpu"

def stage_parameters(model: DF2Net, stage: str) -> list[nn.Parameter]:
    """Freeze everything outside ``stage``'s sub-network; return the parameters that train.

    ``dense`` trains the top-level D-Net layers, ``fine`` ``model.FNet``, ``finer``
    ``model.FrNet``. Parameters frozen by the model itself (Fr-Net's unused layers) stay frozen.
    """
    if stage not in ("dense", "fine", "finer"):
        raise ValueError(f"unknown stage {stage!r}")
    trainable = []
    for name, p in model.named_parameters():
        if not hasattr(p, "_df2net_frozen_by_model"):
            p._df2net_frozen_by_model = not p.requires_grad  # type: ignore[attr-defined]
        mine = stage_of(name) == stage
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



def transplant(state: dict[str, Tensor], model: torch.nn.Module) -> list[str]:
    """Copy into ``model`` every tensor of ``state`` whose name and shape it shares.

    Returns the names of ``model``'s tensors left as initialised (absent or of another shape).
    """
    target = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return [k for k in target if k not in fitting]


def initial_model(
    cfg: TrainConfig, ckpt: dict[str, Any] | None, warn: Callable[[str], None]
) -> tuple[DF2Net, ModelConfig, dict[str, Any]]:
    """The network a run trains, its config, and the metadata of its ``init`` weights.

    With a checkpoint (resuming), the network it names, freshly built (its weights are the
    checkpoint's to load); else the ``init`` weights (under ``cfg.model`` and its overrides, the
    tensors that still fit carried over), or a fresh ``cfg.model`` (default :data:`DEFAULT_MODEL`).
    ``warn`` is told of what is likely a mistake.
    """
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
        if asked.dense_channels > loaded.config.dense_channels:
            # A wider D-Net: grown from the trained one, computing the same depth (model.widen).
            wide = widen_dense(loaded.model, asked.dense_channels)
            loaded = replace(loaded, model=wide, config=wide.config)
            warn(f"D-Net widened to {asked.dense_channels} channels: the trained ones kept, the new ones start without effect")
            if asked == loaded.config:
                return loaded.model, loaded.config, metadata
        # Another network than the init's: carry over every tensor that still fits.
        model = build_model(asked)
        fresh = transplant(loaded.model.state_dict(), model)
        changed = [f.name for f in fields(ModelConfig) if getattr(asked, f.name) != getattr(loaded.config, f.name)]
        shown = ", ".join(fresh[:4]) + (" ..." if len(fresh) > 4 else "")
        warn(
            f"the init weights' model config differs from the one asked in {', '.join(changed)}; "
            f"training the asked one, {len(fresh)} tensors start fresh" + (f" ({shown})" if fresh else "")
        )
        return model, asked, metadata
    name = cfg.model or DEFAULT_MODEL
    model_config = replace(MODEL_CONFIGS[name], **cfg.model_overrides)
    if cfg.stage != "dense":
        warn(f"training the {cfg.stage} stage without init weights: the earlier stages are untrained")
    return build_model(model_config), model_config, metadata
