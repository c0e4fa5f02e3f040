"""Detail score of df2net on real photos (no ground truth): does each stage's fine shading match the photo?

    python scripts/detail_score.py ../shared/data/df2net_demo [--weights W] [--csv OUT.csv]

Every face of every photo is reconstructed; for each stage's depth (and, as a baseline, a
smooth surface: the dense stage blurred with σ 8 px) the score is the correlation between the
high-pass (σ 4 px) of the shading rendered from the depth under a fitted 9-term SH light and
smooth albedo, and the high-pass of the photo's log-luminance, inside the face mask minus eyes,
brows and lips (:func:`df2net.detail_score.shading_detail_score`). Prints one row per face and
the median per stage.

The score rewards a depth that follows the photo's fine contrast, and pressing the photo's colour
into the depth does that too: read it next to the false-relief column of ``df2net evaluate``
(albedo-only marks on synthetic faces), never alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from df2net import Reconstructor
from df2net.detail_score import feature_mask, shading_detail_score
from df2net.errors import InputError
from df2net.geometry import smooth_depth
from df2net.io import iter_image_files, write_text_atomic

#: The smooth baseline: the dense stage blurred this much (crop pixels), below any wrinkle scale.
SMOOTH_SIGMA_PX = 8.0
SMOOTH = "smooth"


def face_scores(face) -> dict[str, float]:
    """``{stage: score}`` for one :class:`~df2net.reconstruct.FaceResult`, plus the smooth baseline."""
    exclude = feature_mask(face.landmarks, face.mask.shape[0])
    depths = dict(face.stages)
    depths[SMOOTH] = smooth_depth(face.stages["dense"], face.mask, SMOOTH_SIGMA_PX)
    return {name: shading_detail_score(face.crop, d, face.mask, exclude) for name, d in depths.items()}


def format_rows(rows: list[tuple[str, dict[str, float]]], columns: list[str]) -> str:
    """A plain-text table: one row per face, then the median of each column."""
    medians = {c: float(np.nanmedian([r[c] for _, r in rows])) for c in columns}
    lines = [["face", *columns]]
    lines += [[name, *(f"{r[c]:.3f}" for c in columns)] for name, r in rows]
    lines.append(["median", *(f"{medians[c]:.3f}" for c in columns)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.insert(len(out) - 1, out[1])
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+", help="photo files or folders")
    parser.add_argument("--weights", default=None, help="df2net weights (default: the shipped ones)")
    parser.add_argument("--csv", default=None, help="also write the per-face scores here")
    args = parser.parse_args()
    reconstructor = Reconstructor(weights=args.weights)
    rows: list[tuple[str, dict[str, float]]] = []
    for path in iter_image_files(args.photos):
        try:
            faces = reconstructor(path)
        except InputError as exc:
            print(f"skipped {exc}", file=sys.stderr)
            continue
        for face in faces:
            rows.append((f"{Path(path).name}#{face.index}", face_scores(face)))
    if not rows:
        print("no faces", file=sys.stderr)
        return 1
    columns = list(rows[0][1])
    print(format_rows(rows, columns))
    if args.csv:
        lines = [",".join(["face", *columns])]
        lines += [",".join([name, *(f"{r[c]:.4f}" for c in columns)]) for name, r in rows]
        write_text_atomic(args.csv, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
