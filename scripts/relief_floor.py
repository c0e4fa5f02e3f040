"""What limits the relief score: each render's relief against F-Net's error in the same band.

    python scripts/relief_floor.py data/synth_relief_eval [--weights W]

For every synthetic render with relief (``depth_base.npy``, ``detail_mask.png``), on the pixels
``df2net evaluate`` scores relief on (:func:`df2net.metrics.relief_region`: near the wrinkles,
where the base is smooth) and in its band (the σ 4 px high-pass, :func:`df2net.metrics.high_pass`
of the aligned depth minus the true base), prints:

- ``r`` and ``slope`` of the finer stage, as ``evaluate`` reports them;
- ``r F+true``: the r of F-Net's depth with the exact true relief added (what a relief stage that
  only adds relief could reach);
- ``relief``: the RMS of the true relief (px), ``F error``: the RMS of F-Net's own error in the band
  (``high_pass(fine - base)``), ``finer error``: the RMS of the finer stage's error in the band.

A relief stage that adds only the relief scores about ``relief / sqrt(relief² + F error²)`` on a
render: renders with little relief are held under r 0.7 by F-Net's error whatever the relief
stage does, unless it also corrects F-Net's shape in that band. The last rows group the renders
by their relief's RMS.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from df2net.data.dataset import load_sample
from df2net.metrics import align_depth, high_pass, pearson, relief_region, relief_scores
from df2net.model.weights import load_model
from df2net.reconstruct import to_network_input

SIGMA_PX = 4.0
#: The relief RMS (crop px) that splits the summary's groups.
GROUP_EDGES_PX = (0.05, 0.1)


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean((v - v.mean()) ** 2)))


def render_row(chain, folder: Path) -> dict[str, float] | None:
    """The scores of one render, or None when it has no relief region to score."""
    s = load_sample(folder)
    if "depth_base" not in s or "detail_mask" not in s:
        return None
    mask = s["mask"] & (s["depth"] != 0)
    true, base = s["depth"].astype(np.float64), s["depth_base"].astype(np.float64)
    region = relief_region(base, mask, s["detail_mask"])
    if region.sum() < 200:
        return None
    cfg = chain.config
    x = to_network_input(s["image"][None], mask[None], cfg.input_size)
    with torch.inference_mode():
        stages = chain.model.forward_stages(x)
    fine = align_depth(stages.fine[0, 0].numpy() * cfg.depth_scale, true, mask)
    finer = align_depth(stages.finer[0, 0].numpy() * cfg.depth_scale, true, mask)
    relief = high_pass(true - base, mask, SIGMA_PX)[region]
    f_err = high_pass(fine - base, mask, SIGMA_PX)[region]
    finer_band = high_pass(finer - base, mask, SIGMA_PX)[region]
    score = relief_scores(finer, true, base, mask, s["detail_mask"])
    return {
        "r": score.r,
        "slope": score.slope,
        "r F+true": pearson(f_err + relief, relief),
        "relief": _rms(relief),
        "F error": _rms(f_err),
        "finer error": _rms(finer_band - relief),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="synthetic renders with relief (make-data synthetic)")
    ap.add_argument("--weights", help="weights file (default: the shipped weights)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    chain = load_model(args.weights)
    chain.model.eval()
    rows = {}
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
        row = render_row(chain, folder)
        if row is not None:
            rows[folder.name] = row
    if not rows:
        print(f"{args.data}: no renders with relief to score")
        return 1
    keys = list(next(iter(rows.values())))
    print("| render | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
    scored = list(rows.values())
    relief = np.array([r["relief"] for r in scored])
    edges = (0.0, *GROUP_EDGES_PX, np.inf)
    groups = [("all renders", np.ones(len(relief), bool))] + [
        (f"relief {lo:g}-{hi:g} px" if np.isfinite(hi) else f"relief over {lo:g} px", (relief >= lo) & (relief < hi))
        for lo, hi in zip(edges[:-1], edges[1:])
    ]
    for label, sel in groups:
        if sel.any():
            means = [np.mean([scored[i][k] for i in np.nonzero(sel)[0]]) for k in keys]
            print(f"| mean, {label} ({int(sel.sum())}) | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
