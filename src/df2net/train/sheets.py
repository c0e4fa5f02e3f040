"""Sample sheets: pictures of a stage's predictions beside their targets, written while it trains."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from torch import Tensor

from df2net.config import CROP_SIZE
from df2net.io import write_bytes_atomic
from df2net.model import ModelConfig
from df2net.train.losses import units_to_grid_pixels

__all__ = ["sample_sheet", "write_sheet"]


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


def write_sheet(path: str | Path, sheet: np.ndarray) -> None:
    """Write a sheet ``(H, W, 3)`` uint8 as a PNG, atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
