"""Is a candidate's error on a held-out set different from the baseline's beyond the noise?

    df2net evaluate DATA -o runs/eval_base --save-depth [--weights BASE]
    df2net evaluate DATA -o runs/eval_cand --save-depth --weights CANDIDATE
    python scripts/paired_compare.py DATA runs/eval_base runs/eval_cand [runs/eval_cand2 ...]

Both runs see the same renders, so each render's error difference (candidate minus baseline) is
one paired observation: two networks can each be 2 % better on some faces and 2 % worse on others
while their means differ by less than their standard error. For each candidate and each score it
prints both means, the mean paired difference with its standard error and 95 % interval
(Student's t), and on how many renders the candidate is better. The scores: depth MAE as % of the
face's depth range and mean normal angle; on sets with relief, relief r; on sets with marks, false
relief (where ``evaluate --save-depth`` kept the unmarked twins' depths). "worse" / "better" means
the interval lies wholly on the worse / better side of zero, "within noise" that it straddles it.
Scores are :func:`df2net.evaluate.score_sample`'s, so the means equal the ``evaluate`` table's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from df2net.data.eval_sample import load_sample
from df2net.evaluate import UNMARKED_DIR, iter_samples, score_sample

#: (SampleScores field, label, +1 where lower is better or -1 where higher is), in print order.
SCORES = (
    ("depth_pct_range", "depth %", 1),
    ("normal_deg", "normals °", 1),
    ("tilt_deg", "tilt °", 1),
    ("relief_r", "relief r", -1),
    ("false_relief_um", "false µm", 1),
)


def paired_summary(base: np.ndarray, cand: np.ndarray, sign: int = 1) -> dict[str, float]:
    """Means, mean paired difference ``cand - base``, its standard error and 95 % t interval, and
    the renders where the candidate is better (lower where ``sign`` is 1, higher where -1)."""
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
        "wins": int((sign * diff < 0).sum()),
    }


def verdict(summary: dict[str, float], sign: int = 1) -> str:
    """``"worse"``, ``"better"`` or ``"within noise"``; ``sign`` 1 where lower is better, -1 where higher is."""
    if summary["low"] > 0:
        return "worse" if sign > 0 else "better"
    if summary["high"] < 0:
        return "better" if sign > 0 else "worse"
    return "within noise"


def collect_scores(dataset: Path, runs: list[Path], stage: str = "finer") -> dict[Path, dict[str, list[float]]]:
    """Each run's per-render scores (``{run: {SCORES key: [value per render]}}``) on the renders
    of ``dataset`` that every run saved a ``stage`` depth for; a score enters only where every run
    has it, so the lists stay paired."""
    scores: dict[Path, dict[str, list[float]]] = {run: {key: [] for key, _, _ in SCORES} for run in runs}
    for folder in iter_samples(dataset):
        depths = [run / "depth" / folder.name / f"{stage}.npy" for run in runs]
        if not all(p.is_file() for p in depths):
            continue
        sample = load_sample(folder)
        per_run = []
        for path in depths:
            twin = path.parent / UNMARKED_DIR / path.name
            per_run.append(score_sample(np.load(path), sample, np.load(twin) if twin.is_file() else None))
        for key, _, _ in SCORES:
            values = [getattr(s, key) for s in per_run]
            if all(np.isfinite(values)):
                for run, value in zip(runs, values):
                    scores[run][key].append(value)
    return scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("baseline", type=Path, help="evaluate --save-depth folder of the baseline")
    ap.add_argument("candidates", nargs="+", type=Path, help="evaluate --save-depth folders to compare with it")
    ap.add_argument("--stage", default="finer", help="the depth file compared: dense, fine, finer (default)")
    args = ap.parse_args(argv)

    runs = [args.baseline, *args.candidates]
    scores = collect_scores(args.dataset, runs, args.stage)

    print(f"{args.dataset}: stage {args.stage}, baseline {args.baseline}")
    print(f"{'candidate':32} {'score':9} {'n':>4} {'base':>7} {'cand':>7} {'diff':>7} {'se':>6} {'95 % interval':>17} {'wins':>5}  verdict")
    for run in args.candidates:
        for key, label, sign in SCORES:
            if not scores[run][key]:
                continue  # no render of the set has this score (relief and marks are on some sets only)
            s = paired_summary(np.array(scores[args.baseline][key]), np.array(scores[run][key]), sign)
            print(
                f"{run.name:32} {label:9} {s['n']:4d} {s['base']:7.3f} {s['cand']:7.3f} {s['diff']:+7.3f} "
                f"{s['se']:6.3f} [{s['low']:+7.3f}, {s['high']:+7.3f}] {s['wins']:5d}  {verdict(s, sign)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
