"""How far behind the lips df2net puts an open mouth's opening, on photos (no ground truth needed).

    python scripts/open_mouths.py ../shared/data/df2net_demo --weights A.safetensors --weights B.safetensors

For every face whose inner lips (landmarks 63 and 67, 1-based) are apart by more than
``--min-gap`` of the eye-corner distance, the depth at the middle of the opening (between the
inner lips' middles) is compared with the depth of the lips (the nearer of the upper and the
lower lip, each taken at the middle of its red, halfway between its outer and inner landmark):
a real open mouth shows teeth, tongue or the cavity 5-20 mm behind the lips. Depth is in crop pixels; it is turned into millimetres with the outer eye
corners' distance taken as 90 mm (an adult's, within about 10 %). Prints one row per face and
the median per weights file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from df2net import Reconstructor
from df2net.errors import InputError
from df2net.io import iter_image_files
from df2net.reconstruct import STAGES

#: Outer eye corners' distance taken as this many millimetres.
EYE_CORNERS_MM = 90.0


def mouth_gap(depth: np.ndarray, landmarks: np.ndarray) -> tuple[float, float]:
    """``(opening behind the lips in mm, lip gap over the eye-corner distance)`` of one face."""
    eyes = float(np.linalg.norm(landmarks[36] - landmarks[45]))
    mm_per_px = EYE_CORNERS_MM / eyes
    upper, lower = landmarks[62], landmarks[66]
    gap = float(np.linalg.norm(upper - lower))

    def at(p: np.ndarray) -> float:
        x, y = np.clip(np.rint(p).astype(int), 0, depth.shape[0] - 1)
        return float(depth[y, x])

    lips = max(at((landmarks[51] + upper) / 2), at((landmarks[57] + lower) / 2))  # larger = nearer
    opening = at((upper + lower) / 2)
    return (lips - opening) * mm_per_px, gap / eyes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="+", type=Path)
    ap.add_argument("--weights", action="append", default=None, help="weights file (repeat to compare; default: the shipped ones)")
    ap.add_argument("--min-gap", type=float, default=0.08, help="inner-lip gap, over the eye-corner distance, that counts as open")
    ap.add_argument("--stage", default="finer", choices=list(STAGES))
    args = ap.parse_args(argv)
    files = iter_image_files(args.photos)
    weights = args.weights or [None]
    medians = []
    for w in weights:
        rec = Reconstructor(weights=w)
        rows = []
        for f in files:
            try:
                faces = rec(f)
            except InputError as exc:
                print(f"skipped: {exc}")
                continue
            for i, face in enumerate(faces):
                behind, gap = mouth_gap(face.stages[args.stage], face.landmarks)
                if gap >= args.min_gap:
                    rows.append((f.name, i, gap, behind))
        label = w or "shipped"
        for name, i, gap, behind in rows:
            print(f"{label}  {name} face{i}  gap {gap:.2f}  opening behind the lips {behind:+.1f} mm")
        med = float(np.median([r[3] for r in rows])) if rows else float("nan")
        medians.append((label, len(rows), med))
    print()
    for label, n, med in medians:
        print(f"{label}: {n} open mouths, opening behind the lips (median) {med:+.1f} mm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
