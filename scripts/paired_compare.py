"""Is a candidate's error on a held-out set different from the baseline's beyond the noise?

    df2net evaluate DATA -o runs/eval_base --save-depth [--weights BASE]
    df2net evaluate DATA -o runs/eval_cand --save-depth --weights CANDIDATE
    python scripts/paired_compare.py DATA runs/eval_base runs/eval_cand [runs/eval_cand2 ...]

Both runs see the same renders, so each render's error difference (candidate minus baseline) is
one paired observation: two networks can each be 2 % better on some faces and 2 % worse on others
while their means differ by less than their standard error. For each candidate and each score
(depth MAE as % of the face's depth range, mean normal angle) it prints both means, the mean
paired difference with its standard error and 95 % interval (Student's t), and on how many renders
the candidate is better. "worse" / "better" means the interval lies wholly above / below zero;
"within noise" that it straddles it. Scores are :func:`df2net.evaluate.score_sample`'s, so the
means equal the ``evaluate`` table's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from df2net.data.eval_sample import load_sample
from df2net.evaluate import iter_samples, score_sample

SCORES = (("depth_pct_range", "depth %"), ("normal_deg", "normals °"))


def paired_summary(base: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Means, mean paired difference ``cand - base``, its standard error and 95 % t interval."""
    diff = np.asarray(cand, float) - np.asarray(base, float)
    n = len(diff)
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * se) if n > 1 else float("nan")
    mean = float(diff.mean())
    return {
        "n": n,
        "base": float(np.mean(base)),
        "cand": float(np.mean(cand)),
        "diff": mean,
        "se": se,
        "low": mean - half,
        "high": mean + half,
        "wins": int((diff < 0).sum()),
    }


def verdict(summary: dict[str, float]) -> str:
    """``"worse"``, ``"better"`` or ``"within noise"`` (lower is better for every score here)."""
    if summary["low"] > 0:
        return "worse"
    if summary["high"] < 0:
        return "better"
    return "within noise"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("baseline", type=Path, help="evaluate --save-depth folder of the baseline")
    ap.add_argument("candidates", nargs="+", type=Path, help="evaluate --save-depth folders to compare with it")
    ap.add_argument("--stage", default="finer", help="the depth file compared: dense, fine, finer (default)")
    args = ap.parse_args(argv)

    runs = [args.baseline, *args.candidates]
    scores: dict[Path, dict[str, list[float]]] = {run: {key: [] for key, _ in SCORES} for run in runs}
    for folder in iter_samples(args.dataset):
        depths = [run / "depth" / folder.name / f"{args.stage}.npy" for run in runs]
        if not all(p.is_file() for p in depths):
            continue
        sample = load_sample(folder)
        for run, path in zip(runs, depths):
            s = score_sample(np.load(path), sample)
            for key, _ in SCORES:
                scores[run][key].append(getattr(s, key))

    print(f"{args.dataset}: stage {args.stage}, baseline {args.baseline}")
    print(f"{'candidate':32} {'score':9} {'n':>4} {'base':>7} {'cand':>7} {'diff':>7} {'se':>6} {'95 % interval':>17} {'wins':>5}  verdict")
    for run in args.candidates:
        for key, label in SCORES:
            if not scores[run][key]:
                print(f"{run.name:32} {label:9}    0  (no renders with both depths)")
                continue
            s = paired_summary(np.array(scores[args.baseline][key]), np.array(scores[run][key]))
            print(
                f"{run.name:32} {label:9} {s['n']:4d} {s['base']:7.3f} {s['cand']:7.3f} {s['diff']:+7.3f} "
                f"{s['se']:6.3f} [{s['low']:+7.3f}, {s['high']:+7.3f}] {s['wins']:5d}  {verdict(s)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
