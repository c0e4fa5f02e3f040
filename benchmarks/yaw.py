"""Turned heads: recall and landmark error of the face detectors against yaw, on synthetic faces.

    python benchmarks/yaw.py [--identities 6] [--yaws 0,20,35,45,52,60] [--pitched 45:15,-45:-15]
        [--detectors auto,hog] [--coverage 24] [--texture-cache data/fits_demo/textures]
        [--sfm-dir DIR] [--old-set data/synth_relief]

Faces: ``df2net.data.synthetic.render_synthetic`` with the default :class:`SyntheticConfig` at
fixed poses. Identity ``i`` (shape, expression, detail, texture, light, background) is what the
generator of sample ``i`` of ``df2net make-data synthetic --seed 0`` draws; each is rendered at
yaw 0 and +-each of ``--yaws`` (pitch and roll 0), and at the ``--pitched`` yaw:pitch poses.
Textures come from the cache of a ``make-data fits`` run, the SFM from ``../shared/data/sfm``.
Every render (a 640 px canvas, face box about 270 px) is made once and given to each detector.
A face is found when the nearest detection's landmarks lie within 0.12 box sides of the true
projected ones on average (the SFM's 50 landmarks; the rule by which ``render_synthetic`` keeps a
pose). Per |yaw|: recall, the share of faces with any detection (however far its landmarks),
the median landmark error of the nearest detection (faces with one) and the median CPU seconds
(``time.process_time``) of one detection.

``--coverage N``: the poses training data holds. N samples of the default config with random
poses (seed 1000), the first pose attempt only (``max_pose_tries=1``: the first attempt draws as
it does with the default 8), kept by the default detector or not, by |yaw| bin, beside the first
attempts recorded in ``--old-set`` (``params["pose_attempts"]``; made with the old plain-HOG
detector). The old set holds only samples that were kept at some attempt.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TEXTURES = REPO / "data" / "fits_demo" / "textures"
OLD_SET = REPO / "data" / "synth_relief"
COVERAGE_BINS = ((0, 15), (15, 30), (30, 45), (45, 60))
COVERAGE_SEED = 1000


@dataclass
class Render:
    """One canvas and the true landmarks projected into it."""

    yaw: float
    pitch: float
    image: np.ndarray
    landmarks: np.ndarray


@dataclass
class Scores:
    """One detector's results over the renders of one pose bin."""

    found: list[bool] = field(default_factory=list)
    detected: list[bool] = field(default_factory=list)  # any detection, however far its landmarks
    errors: list[float] = field(default_factory=list)  # faces with any detection
    seconds: list[float] = field(default_factory=list)


class _NoFace:
    """A detector that finds nothing, so ``render_synthetic`` stops after rendering."""

    def detect(self, rgb: np.ndarray) -> list:
        return []


def load_inputs(texture_cache: Path, sfm_dir: Path | None) -> tuple[Any, Any, list[str]]:
    """``(model, library, keys)`` as ``make-data synthetic`` loads them."""
    from df2net.data.sfm import load_sfm
    from df2net.data.textures import TextureLibrary

    library = TextureLibrary(texture_cache)
    keys = library.keys()
    if not keys:
        raise SystemExit(f"no textures in {texture_cache}: run df2net make-data fits first")
    return load_sfm(sfm_dir), library, keys


def render_at(model: Any, library: Any, keys: list[str], index: int, yaw: float, pitch: float) -> Render:
    """Identity ``index`` (seed 0) rendered at ``(yaw, pitch, 0)``, without detection."""
    from df2net.data.make import sample_rng
    from df2net.data.synthetic import SampleFailed, SyntheticConfig, render_synthetic

    got: dict[str, np.ndarray] = {}
    cfg = SyntheticConfig(max_pose_tries=1)
    try:
        render_synthetic(sample_rng(0, index), model, library, keys, cfg, _NoFace(), pose_deg=(yaw, pitch, 0.0),
                         on_render=lambda img, lm: got.update(image=img, landmarks=lm))
    except SampleFailed:
        pass  # expected: _NoFace finds nothing
    return Render(yaw, pitch, got["image"], got["landmarks"])


def score_one(detector: Any, render: Render, ibug_index: np.ndarray) -> tuple[bool, float, float]:
    """``(found, landmark error, CPU seconds)`` of one detector on one render."""
    from df2net.data.synthetic import MAX_LANDMARK_ERROR, match_face

    t0 = time.process_time()
    dets = detector.detect(render.image)
    seconds = time.process_time() - t0
    _, err = match_face(dets, render.landmarks, ibug_index)
    return err <= MAX_LANDMARK_ERROR, err, seconds


def pose_label(yaw: float, pitch: float) -> str:
    """The table row a pose belongs to: ``|yaw|`` and, when pitched, ``|pitch|``."""
    return f"{abs(yaw):g}" + (f" (pitch +-{abs(pitch):g})" if pitch else "")


def yaw_benchmark(args: argparse.Namespace, model: Any, library: Any, keys: list[str]) -> None:
    """Render every pose of every identity once, detect with each detector, print the table."""
    from df2net.detect import FaceDetector

    names = args.detectors.split(",")
    detectors = {n: FaceDetector(detector=n) for n in names}
    yaws = [float(y) for y in args.yaws.split(",")]
    poses = [(s * y, 0.0) for y in yaws for s in ((1.0,) if y == 0 else (1.0, -1.0))]
    poses += [tuple(float(v) for v in p.split(":")) for p in args.pitched.split(",") if p]
    ibug_index = model.landmark_array()[0]
    table: dict[str, dict[str, Scores]] = {}
    t0 = time.process_time()
    for index in range(args.identities):
        for yaw, pitch in poses:
            render = render_at(model, library, keys, index, yaw, pitch)
            if not table:
                for det in detectors.values():
                    det.detect(render.image)  # warm up (first use)
            row = table.setdefault(pose_label(yaw, pitch), {n: Scores() for n in names})
            for name, det in detectors.items():
                found, err, sec = score_one(det, render, ibug_index)
                row[name].found.append(found)
                row[name].detected.append(bool(np.isfinite(err)))
                if np.isfinite(err):
                    row[name].errors.append(err)
                row[name].seconds.append(sec)
        print(f"identity {index}: done ({time.process_time() - t0:.0f} s CPU so far)", flush=True)
    print(f"\n#### {args.identities} synthetic identities x {len(poses)} poses (roll 0), 640 px canvas, "
          f"face box ~270 px; found = landmark error <= 0.12 box side\n")
    head = ["yaw (deg)", "faces"] + [f"{n}: {c}" for n in names for c in ("recall", "any detection", "median error", "s / detection")]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for label, row in table.items():
        cells = [label, str(len(row[names[0]].found))]
        for n in names:
            s = row[n]
            err = f"{np.median(s.errors):.3f}" if s.errors else "-"
            cells += [f"{np.mean(s.found):.2f} ({sum(s.found)}/{len(s.found)})", f"{np.mean(s.detected):.2f}", err, f"{np.median(s.seconds):.2f}"]
        print("| " + " | ".join(cells) + " |")


def _bin(yaw: float) -> int:
    return min(int(abs(yaw) // 15), len(COVERAGE_BINS) - 1)


def new_coverage(count: int, model: Any, library: Any, keys: list[str]) -> list[tuple[float, bool]]:
    """``(first yaw, kept)`` of ``count`` default samples with the default detector."""
    from df2net.data.make import sample_rng
    from df2net.data.synthetic import SampleFailed, SyntheticConfig, render_synthetic

    cfg = SyntheticConfig(max_pose_tries=1)
    out = []
    for i in range(count):
        try:
            first = render_synthetic(sample_rng(COVERAGE_SEED, i), model, library, keys, cfg).params["pose_attempts"][0]
        except SampleFailed as exc:
            first = exc.attempts[0]
        out.append((float(first["yaw"]), first["result"] == "ok"))
    return out


def old_coverage(folder: Path) -> list[tuple[float, bool]]:
    """``(first yaw, kept)`` of every sample's first attempt in an existing dataset."""
    out = []
    for path in sorted(folder.glob("*/params.json")):
        first = json.loads(path.read_text())["pose_attempts"][0]
        out.append((float(first["yaw"]), first["result"] == "ok"))
    return out


def coverage_table(rows: dict[str, list[tuple[float, bool]]]) -> None:
    """Per |yaw| bin: first attempts drawn and kept, for each set."""
    head = ["set"] + [f"yaw {a}-{b}: kept / drawn" for a, b in COVERAGE_BINS] + ["all kept / drawn"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name, firsts in rows.items():
        cells = [name]
        for b in range(len(COVERAGE_BINS)):
            sel = [kept for yaw, kept in firsts if _bin(yaw) == b]
            cells.append(f"{sum(sel)} / {len(sel)}")
        cells.append(f"{sum(k for _, k in firsts)} / {len(firsts)}")
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--identities", type=int, default=6)
    ap.add_argument("--yaws", default="0,20,35,45,52,60", help="|yaw| values (degrees), each rendered at + and -")
    ap.add_argument("--pitched", default="45:15,-45:-15", help="extra yaw:pitch poses (degrees), comma-separated")
    ap.add_argument("--detectors", default="auto,hog")
    ap.add_argument("--coverage", type=int, default=0, help="also: first-attempt poses of N random default samples")
    ap.add_argument("--texture-cache", type=Path, default=TEXTURES)
    ap.add_argument("--sfm-dir", type=Path)
    ap.add_argument("--old-set", type=Path, default=OLD_SET)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    model, library, keys = load_inputs(args.texture_cache, args.sfm_dir)
    if args.identities > 0:
        yaw_benchmark(args, model, library, keys)
    if args.coverage > 0:
        t0 = time.process_time()
        rows = {f"new: default detector (auto), {args.coverage} random samples": new_coverage(args.coverage, model, library, keys)}
        if args.old_set.is_dir():
            rows[f"old: {args.old_set.name} (plain HOG)"] = old_coverage(args.old_set)
        print(f"\n#### First pose attempt by |yaw| (degrees): kept / drawn ({time.process_time() - t0:.0f} s CPU)\n")
        coverage_table(rows)


if __name__ == "__main__":
    main()
