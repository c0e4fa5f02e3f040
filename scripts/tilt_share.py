"""How much of the depth error is the face's overall tilt, and how the tilt follows the head's yaw.

    df2net evaluate data/ict_eval -o runs/eval_a --save-depth [--weights A]
    python scripts/tilt_share.py data/ict_eval runs/eval_a [runs/eval_b ...] [--method finer]

For each evaluation folder (``df2net evaluate --save-depth``: ``depth/<sample>/<method>.npy``) and
each render, the depth is aligned as ``evaluate`` aligns it (scale and offset,
:func:`df2net.metrics.align_depth`), and scored three ways (mean absolute error over the face's
depth range, %):

- **as evaluated**: after scale and offset (``evaluate``'s depth %);
- **tilt forgiven**: after scale and the best plane (the error that is not the overall tilt);
- **truth's quadratic**: the truth's own best quadratic surface against the truth (a shape with
  no face in it; a method no closer than this has learnt little beyond the head's orientation).

Then, by |yaw| (from the render's ``params.json``): the tilt error (``evaluate``'s ``tilt °``), the
horizontal slope of the best plane of the depth against the truth's (median ratio; 1 is right,
0 a face that does not turn) and how many renders have it the wrong way round (of those whose
true plane turns by more than ``WRONG_WAY_MIN_DEG``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from df2net.data.eval_sample import load_sample
from df2net.evaluate import iter_samples
from df2net.metrics import align_depth, depth_error, depth_range, plane_slopes, slopes_angle_deg

YAW_BINS = ((0.0, 15.0), (15.0, 30.0), (30.0, 45.0), (45.0, 90.0))

#: A render counts as "the wrong way round" only where the truth's plane turns left or right by
#: more than this many degrees (below it the sign is the face's shape, not its turn).
WRONG_WAY_MIN_DEG = 3.0


def _fit_error(basis: np.ndarray, target: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(basis, target, rcond=None)
    return basis @ coef - target


def render_scores(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The three errors (% of the depth range), the tilt error (°) and both best planes' slopes."""
    v, u = np.nonzero(mask)
    t = true[v, u].astype(np.float64)
    rng = depth_range(true, mask)
    aligned = align_depth(pred, true, mask)
    ones = np.ones_like(t)
    plane = np.stack([pred[v, u].astype(np.float64), u, v, ones], axis=1)
    quadratic = np.stack([u, v, ones, u * u, v * v, u * v], axis=1).astype(np.float64)
    slope_pred, slope_true = plane_slopes(aligned, mask), plane_slopes(true, mask)
    return {
        "evaluated": depth_error(pred, true, mask).percent_of_range,
        "tilt_forgiven": 100.0 * float(np.mean(np.abs(_fit_error(plane, t)))) / rng,
        "truth_quadratic": 100.0 * float(np.mean(np.abs(_fit_error(quadratic, t)))) / rng,
        "tilt_deg": slopes_angle_deg(slope_pred, slope_true),
        "slope_pred": float(slope_pred[0]),
        "slope_true": float(slope_true[0]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the evaluated renders (a make-data folder)")
    parser.add_argument("runs", type=Path, nargs="+", help="evaluate --save-depth folders")
    parser.add_argument("--method", default="finer", help="the saved depth to score (default: finer)")
    args = parser.parse_args(argv)

    samples = iter_samples(args.data)
    for run in args.runs:
        rows = []
        for path in samples:
            depth_file = run / "depth" / path.name / f"{args.method}.npy"
            if not depth_file.is_file():
                continue
            sample = load_sample(path)
            mask = sample.mask & (sample.depth != 0)
            yaw = json.loads((path / "params.json").read_text()).get("pose_deg", {}).get("yaw", float("nan"))
            rows.append({"yaw": float(yaw), **render_scores(np.load(depth_file), sample.depth, mask)})
        if not rows:
            print(f"{run}: no saved {args.method} depth for {args.data}")
            continue
        keys = ("evaluated", "tilt_forgiven", "truth_quadratic", "tilt_deg")
        mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        share = 1 - mean["tilt_forgiven"] / mean["evaluated"]
        print(f"{run} ({args.method}, {len(rows)} renders): depth % {mean['evaluated']:.2f} as evaluated, "
              f"{mean['tilt_forgiven']:.2f} with the tilt forgiven ({share:.0%} of the error is the tilt); "
              f"the truth's own best quadratic {mean['truth_quadratic']:.2f}; tilt {mean['tilt_deg']:.2f}°")
        print(f"  |yaw|     n  tilt °  slope ratio (median)  wrong way round "
              f"(of those turned > {WRONG_WAY_MIN_DEG:g}°)")
        for lo, hi in YAW_BINS:
            part = [r for r in rows if lo <= abs(r["yaw"]) < hi]
            if not part:
                continue
            ratios = [r["slope_pred"] / r["slope_true"] for r in part if abs(r["slope_true"]) > 1e-6]
            ratio = float(np.median(ratios)) if ratios else float("nan")
            turned = [r for r in part if abs(r["slope_true"]) > np.tan(np.radians(WRONG_WAY_MIN_DEG))]
            wrong = sum(1 for r in turned if np.sign(r["slope_pred"]) != np.sign(r["slope_true"]))
            tilt = np.mean([r["tilt_deg"] for r in part])
            print(f"  {lo:2.0f}-{hi:2.0f} {len(part):5d}  {tilt:6.2f}  {ratio:20.2f}  {wrong:3d} of {len(turned)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
