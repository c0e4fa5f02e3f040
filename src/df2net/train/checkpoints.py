"""Checkpoint files of a training run: where they lie, writing, pruning, loading, and the RNG states.

A checkpoint holds tensors and primitive types only, so that it loads with
``torch.load(weights_only=True)``; what goes into it is the trainer's business. A stage run keeps
``RUN/checkpoints/step_*.pt`` (:func:`checkpoint_path`), the last few of them.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from df2net.io import atomic_path

__all__ = [
    "CHECKPOINT_DIR",
    "checkpoint_files",
    "checkpoint_path",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "rng_state",
    "set_rng_state",
    "write_checkpoint",
]

CHECKPOINT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``RUN/checkpoints/step_N.pt``: where a run's checkpoint after ``step`` steps goes."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


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


def write_checkpoint(path: str | Path, content: dict[str, Any]) -> Path:
    """Save ``content`` to ``path`` atomically (a reader never sees half a file); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return path


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` (at least one) of the run's checkpoints."""
    for _, old in checkpoint_files(run_dir)[: -max(1, keep)]:
        old.unlink(missing_ok=True)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The torch, numpy, Python (and CUDA on ``device``) RNG states, as tensors and primitives."""
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


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` captured (after a ``weights_only`` load)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
