"""Does a candidate weights file pass the shipping rule? (the model card's "How weights are judged")

    df2net evaluate data/SET --weights W --no-baselines -o runs/eval_KEY_NAME --save-depth   # each set
    python scripts/shipping_rule.py BASE CANDIDATE [--runs runs] [--set KEY:DATA:ROLE ...]

For each set, ``runs/eval_<KEY>_<BASE>`` and ``runs/eval_<KEY>_<CANDIDATE>`` (``evaluate
--save-depth`` of the shipped file and of the candidate) are paired render by render
(``scripts/paired_compare.py``), and the rule set before any candidate was scored is applied:

- **target** sets (default: the held-out ICT renders): the candidate is better beyond the noise in
  depth % or in normals °, and worse beyond it in neither;
- **guard** sets (default: the standard set, the relief set and the 200 Surrey renders): no score
  that guards (depth %, normals °, relief r, false µm) is worse beyond the noise.

"Beyond the noise" is a paired 95 % interval wholly on one side of zero. Tilt ° is printed but does
not decide (it came after the rule). It prints every set's scores with their verdicts and then
one line: ``SHIP`` or ``DO NOT SHIP`` with the reasons. Exit status: 0 to ship, 1 not to, 2 when
an evaluation folder is missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_compare import SCORES, collect_scores, paired_summary, verdict  # noqa: E402

#: Scores whose worsening beyond the noise blocks shipping, on every set.
GUARDED = ("depth_pct_range", "normal_deg", "relief_r", "false_relief_um")
#: Scores of which a target set must improve at least one beyond the noise.
TARGETED = ("depth_pct_range", "normal_deg")


@dataclass(frozen=True)
class EvalSet:
    """One held-out set: the key of its ``runs/eval_<key>_<name>`` folders, its data folder and
    its role, ``"target"`` (must improve) or ``"guard"`` (must not get worse)."""

    key: str
    data: Path
    role: str

    @classmethod
    def parse(cls, text: str) -> EvalSet:
        """``KEY:DATA:ROLE``, as ``--set`` takes it."""
        parts = text.split(":")
        if len(parts) != 3 or parts[2] not in ("target", "guard"):
            raise argparse.ArgumentTypeError(f"--set wants KEY:DATA:target or KEY:DATA:guard, got {text!r}")
        return cls(parts[0], Path(parts[1]), parts[2])


DEFAULT_SETS = (
    EvalSet("ict", Path("data/ict_eval"), "target"),
    EvalSet("std", Path("data/synth_eval"), "guard"),
    EvalSet("relief", Path("data/synth_relief_eval"), "guard"),
    EvalSet("big", Path("data/synth_eval_big"), "guard"),
)


def set_reasons(role: str, verdicts: dict[str, str]) -> list[str]:
    """Why one set blocks shipping (empty: it does not), from its ``{score key: verdict}``."""
    labels = {key: label for key, label, _ in SCORES}
    reasons = [f"{labels[key]} worse" for key in GUARDED if verdicts.get(key) == "worse"]
    if role == "target" and not any(verdicts.get(key) == "better" for key in TARGETED):
        reasons.append("neither depth nor normals better")
    return reasons


def judge(sets: list[EvalSet], runs: Path, base: str, cand: str, out: Callable[[str], None] = print) -> list[str]:
    """Apply the rule over ``sets``; print each score's paired comparison through ``out`` and
    return the reasons not to ship (empty: ship). Raises FileNotFoundError if a folder is missing."""
    labels = {key: (label, sign) for key, label, sign in SCORES}
    blocking: list[str] = []
    for s in sets:
        folders = [runs / f"eval_{s.key}_{base}", runs / f"eval_{s.key}_{cand}"]
        missing = [f for f in folders if not (f / "depth").is_dir()]
        if missing:
            raise FileNotFoundError(f"no saved depths in {missing[0]} (run df2net evaluate ... --save-depth)")
        scores = collect_scores(s.data, folders)
        verdicts: dict[str, str] = {}
        out(f"{s.key} ({s.role}, {s.data})")
        for key, values in scores[folders[1]].items():
            if not values:
                continue
            label, sign = labels[key]
            summary = paired_summary(np.array(scores[folders[0]][key]), np.array(values), sign)
            verdicts[key] = verdict(summary, sign)
            out(
                f"  {label:9} n {summary['n']:3d}  {summary['base']:8.3f} -> {summary['cand']:8.3f}  "
                f"[{summary['low']:+.3f}, {summary['high']:+.3f}]  {verdicts[key]}"
            )
        blocking += [f"{s.key}: {reason}" for reason in set_reasons(s.role, verdicts)]
    return blocking


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="name of the shipped file's evaluations (runs/eval_<set>_<base>)")
    ap.add_argument("candidate", help="name of the candidate's evaluations")
    ap.add_argument("--runs", type=Path, default=Path("runs"), help="folder of the evaluations (default runs)")
    ap.add_argument("--set", dest="sets", type=EvalSet.parse, action="append",
                    help="KEY:DATA:target|guard, repeatable (default: ict target; std, relief, big guard)")
    args = ap.parse_args(argv)
    try:
        blocking = judge(list(args.sets or DEFAULT_SETS), args.runs, args.base, args.candidate)
    except FileNotFoundError as exc:
        print(f"shipping_rule: {exc}", file=sys.stderr)
        return 2
    if blocking:
        print(f"DO NOT SHIP {args.candidate}: " + "; ".join(blocking))
        return 1
    print(f"SHIP {args.candidate}: better on every target set, worse on no guarded score")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
