"""Depth and normal errors in the mouth and eye regions of renders with open mouths and closed eyes.

    df2net evaluate data/ict_eval -o runs/eval_a --save-depth [--weights A]
    python scripts/expression_regions.py data/ict_eval runs/eval_a [runs/eval_b ...]

For each evaluation folder (``df2net evaluate --save-depth``: ``depth/<sample>/<method>.npy``) and
each method in it, the depth is aligned (scale and offset, :func:`df2net.metrics.align_depth`) on
the whole face mask, as ``evaluate`` does, and then scored only inside a region:

- **mouth** (renders with ``jawOpen`` >= ``--open``): the outer lips' polygon (landmarks 49-60)
  widened by 6 % of the eye-corner distance;
- **eyes** (renders with ``eyeBlink`` >= ``--closed`` on either side): each eye's polygon
  (landmarks 37-42, 43-48) widened by 12 % of that distance (the lids around it).

(The rule lives in :mod:`df2net.face_regions`, which training's region boost uses too.)

Depth error is the mean absolute error over the face's depth range (%), as ``evaluate``'s; the
normal error is the mean angle (degrees) of the normals of the aligned depth against the true
normals. The renders' expressions come from their ``params.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from df2net.face_regions import EYES, EYES_WIDEN, MOUTH, MOUTH_WIDEN, region_mask
from df2net.geometry import depth_to_normals
from df2net.metrics import align_depth, depth_range, mean_normal_angle


def region_scores(pred: np.ndarray, depth: np.ndarray, normals: np.ndarray, mask: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """``(depth MAE % of the face's range, mean normal angle)`` inside ``region``, aligned on ``mask``."""
    aligned = align_depth(pred, depth, mask)
    where = region & mask
    err = float(np.mean(np.abs(aligned - depth)[where])) / depth_range(depth, mask) * 100.0
    ang = mean_normal_angle(depth_to_normals(aligned, mask), normals, where)
    return err, ang


def main(argv: list[str] | None = None) -> int:
    from df2net.data.eval_sample import load_sample

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("evaluations", nargs="+", type=Path, help="evaluate --save-depth output folders")
    ap.add_argument("--open", type=float, default=0.3, help="jawOpen that makes an open mouth")
    ap.add_argument("--closed", type=float, default=0.5, help="eyeBlink that makes a closed eye")
    args = ap.parse_args(argv)
    table: dict[tuple[str, str], list[tuple[float, float]]] = {}
    counts = {"mouth": 0, "eyes": 0}
    for folder in sorted(p for p in args.dataset.iterdir() if (p / "params.json").is_file()):
        expr = json.loads((folder / "params.json").read_text()).get("expression", {})
        wants = []
        if expr.get("jawOpen", 0.0) >= args.open:
            wants.append(("mouth", MOUTH, MOUTH_WIDEN))
        if max(expr.get("eyeBlink_L", 0.0), expr.get("eyeBlink_R", 0.0)) >= args.closed:
            wants.append(("eyes", EYES, EYES_WIDEN))
        if not wants:
            continue
        sample = load_sample(folder)
        size = sample.mask.shape[0]
        for name, groups, widen in wants:
            counts[name] += 1
            region = region_mask(sample.landmarks, groups, widen, size)
            for ev in args.evaluations:
                for npy in sorted((ev / "depth" / folder.name).glob("*.npy")):
                    key = (name, f"{ev.name}/{npy.stem}")
                    table.setdefault(key, []).append(region_scores(np.load(npy), sample.depth, sample.normals, sample.mask, region))
    print(f"{counts['mouth']} renders with an open mouth, {counts['eyes']} with a closed eye")
    print(f"{'region':6}  {'method':40}  {'depth %':>8}  {'normals °':>9}")
    for (region, method), rows in sorted(table.items()):
        d, a = np.mean(rows, axis=0)
        print(f"{region:6}  {method:40}  {d:8.2f}  {a:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
