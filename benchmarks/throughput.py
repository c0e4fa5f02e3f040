"""Faces per second of ``df2net reconstruct`` (local engine, every file) against a release, in turns.

Run by hand (not a test); about a minute per round on 2 cores:

    git worktree add ../release_b4114fe b4114fe            # once: the release to compare with
    python benchmarks/throughput.py [--release ../release_b4114fe] [--rounds 3]
                                    [--mode folder,group] [--demo-dir DIR] [--formats all]

Each round runs the whole command once per tree, the order alternating between rounds (this
tree, the release; then the release, this tree ...), each in a fresh process whose
``PYTHONPATH`` is that tree's ``src`` (same Python, same packages, same cached ONNX model) and
into a fresh output folder, so nothing is reused; both run the same weights (``--weights``: by
default the release's shipped file, so the depth compared is the code's, not the weights'), after
one untimed run each that exports and caches the network. Two inputs (``--mode``):

- ``folder``: the 25 demo photos (one face each, 360-580 px);
- ``group``: one 2-megapixel group photo, 1732 x 1155, made here from the demo faces
  (``tests/face_photos.make_collage``, seed 1000, up to 14 faces, jaw 40-200 px, rolled up to
  40 degrees, over a busy texture: the first collage of ``benchmarks/detectors.py``).

It prints, per input: each tree's median seconds (``run``: what the command reports, from
loading the model to the last file; ``wall``: the process from start to exit; ``CPU``: user +
system seconds of the process, and how many cores that kept busy on average), faces, faces/s
and the ratio of this tree's faces/s to the release's; the median seconds per face of each step
from ``results.parquet``; and the largest difference of any face's ``depth.npy`` between the
trees (crop pixels; the goal is <= 1e-3). On a shared machine absolute times move with the load;
the ratio of runs taken in turns much less.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEMO_DIR = (ROOT / ".." / "shared" / "data" / "df2net_demo").resolve()
DEFAULT_RELEASE = (ROOT / ".." / "release_b4114fe").resolve()
SUMMARY = re.compile(r"(\d+) face\(s\) in ([\d.]+) s \(([\d.]+) faces/s\)")
STEPS = ("load_s", "detect_crop_s", "network_s", "write_s")
DEPTH_GOAL = 1e-3  # crop pixels


def group_photo(demo_dir: Path, folder: Path) -> Path:
    """The 2-megapixel group photo (seed 1000), written as ``folder/group.png``."""
    from PIL import Image

    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "tests"))
    import face_photos
    from detectors import demo_faces

    rgb, placed = face_photos.make_collage(demo_faces(demo_dir), np.random.default_rng(1000), count=14)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "group.png"
    Image.fromarray(rgb).save(path)
    print(f"group photo: {rgb.shape[1]} x {rgb.shape[0]}, {len(placed)} faces pasted -> {path}", file=sys.stderr)
    return path


def run_once(tree: Path, photos: Path, out: Path, formats: str, weights: Path | None = None) -> dict:
    """One ``df2net reconstruct`` of ``photos`` by the code of ``tree`` (with ``weights``, or
    the tree's own shipped weights); its times and steps."""
    import pyarrow.parquet as pq

    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cmd = [sys.executable, "-m", "df2net", "reconstruct", str(photos), "-o", str(out), "-q"]
    if formats != "all":
        cmd += ["--formats", formats]
    if weights is not None:
        cmd += ["--weights", str(weights)]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=tree)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    match = SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        sys.exit(f"{tree} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    rows = [r for r in pq.read_table(out / "results.parquet").to_pylist() if r["status"] == "ok"]
    faces = int(match.group(1))
    steps = {s: sum(r[s] for r in rows) / max(faces, 1) for s in STEPS}
    return {"wall": wall, "run": float(match.group(2)), "cpu": cpu, "faces": faces, **steps}


def depth_difference(ours: Path, release: Path) -> tuple[float, int, int]:
    """Largest |depth difference| over the faces both outputs hold (crop pixels), the faces
    compared, and the faces only one of them holds.

    Faces are paired by photo and crop box (``metadata.json``; the same crop within 0.5 px), not
    by number: a tree that keeps one more small face numbers the faces after it differently.
    """
    def faces(out: Path) -> list[tuple[str, np.ndarray, Path]]:
        """(photo, crop box, depth file) of every face; the face's number stands in for the box
        when there is no metadata."""
        found = []
        for depth in sorted(out.glob("*/face*/depth.npy")):
            meta = depth.parent / "metadata.json"
            box = json.loads(meta.read_text())["crop_box_xy_side"] if meta.is_file() else [int(depth.parent.name[4:])]
            found.append((depth.parent.parent.name, np.asarray(box, float), depth))
        return found

    mine, theirs = faces(ours), faces(release)
    worst, paired = 0.0, 0
    for stem, box, path in mine:
        match = [p for s, b, p in theirs if s == stem and b.shape == box.shape and np.abs(b - box).max() <= 0.5]
        if match:
            a, b = np.load(path), np.load(match[0])
            worst = max(worst, float(np.abs(a - b).max()) if a.shape == b.shape else float("inf"))
            paired += 1
    return worst, paired, len(mine) + len(theirs) - 2 * paired


def measure(name: str, photos: Path, args: argparse.Namespace, tmp: Path) -> None:
    trees = {"this tree": ROOT, "release": args.release}
    runs: dict[str, list[dict]] = {t: [] for t in trees}
    depth: list[tuple[float, int, int]] = []
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]
        outs = {}
        for label in order:
            outs[label] = tmp / f"{name}_{label.replace(' ', '_')}_{r}"
            result = run_once(trees[label], photos, outs[label], args.formats, args.weights)
            runs[label].append(result)
            print(f"{name} round {r + 1}/{args.rounds} {label}: {result['faces']} faces, run "
                  f"{result['run']:.1f} s, wall {result['wall']:.1f} s", file=sys.stderr)
        depth.append(depth_difference(outs["this tree"], outs["release"]))
        for out in outs.values():  # keep the disk small: only the depth was needed
            shutil.rmtree(out, ignore_errors=True)

    med = {t: {k: statistics.median(x[k] for x in runs[t]) for k in runs[t][0]} for t in trees}
    rate = {t: med[t]["faces"] / med[t]["run"] for t in trees}
    rate_wall = {t: med[t]["faces"] / med[t]["wall"] for t in trees}
    ratios = [(a["faces"] / a["run"]) / (b["faces"] / b["run"]) for a, b in zip(runs["this tree"], runs["release"])]
    print(f"\n#### {name}: {photos.name}, formats {args.formats}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end, {args.rounds} rounds in turns (medians)\n")
    print("| tree | faces | run s | wall s | CPU s | cores busy | faces/s (run) | faces/s (wall) | x release (run) "
          "| x release (wall) | CPU s per face |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for t in trees:
        m = med[t]
        print(f"| {t} | {m['faces']:.0f} | {m['run']:.2f} | {m['wall']:.2f} | {m['cpu']:.1f} | {m['cpu'] / m['wall']:.2f} | "
              f"{rate[t]:.2f} | {rate_wall[t]:.2f} | {rate[t] / rate['release']:.2f} | "
              f"{rate_wall[t] / rate_wall['release']:.2f} | {m['cpu'] / m['faces']:.2f} |")
    print(f"\nthis tree / release, faces/s of each round: {', '.join(f'{x:.2f}' for x in ratios)}")
    worst = max(d[0] for d in depth)
    print(f"depth.npy, this tree against the release: max |diff| {worst:.2e} px over {depth[0][1]} faces "
          f"({'within' if worst <= DEPTH_GOAL else 'NOT within'} {DEPTH_GOAL:g} px)"
          + (f"; {depth[0][2]} face(s) in only one of them" if depth[0][2] else ""))
    print("\n| seconds per face (median of rounds) | " + " | ".join(s.removesuffix("_s") for s in STEPS) + " |")
    print("| --- |" + " --- |" * len(STEPS))
    for t in trees:
        print(f"| {t} | " + " | ".join(f"{med[t][s]:.3f}" for s in STEPS) + " |")
    print()


def warm_up(args: argparse.Namespace) -> None:
    """One untimed run of each tree on one demo photo, so that no timed run exports or caches
    the network (a tree's first run with new weights exports them to ONNX)."""
    photo = sorted(p for p in args.demo_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:1]
    with tempfile.TemporaryDirectory(prefix="df2net_warm_") as tmp:
        (Path(tmp) / "in").mkdir()
        shutil.copy(photo[0], Path(tmp) / "in" / photo[0].name)
        for label, tree in (("this tree", ROOT), ("release", args.release)):
            run_once(tree, Path(tmp) / "in", Path(tmp) / label.replace(" ", "_"), args.formats, args.weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=DEFAULT_RELEASE,
                        help="a checkout of the release to compare with (git worktree add DIR b4114fe)")
    parser.add_argument("--demo-dir", type=Path, default=DEFAULT_DEMO_DIR)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", default="folder,group", help="folder, group or both (comma-separated)")
    parser.add_argument("--formats", default="all", help="output formats (default: all, as the CLI)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="the weights both trees run (default: the release's shipped file, so that the "
                             "depth compared is the code's, not the weights'); 'own': each tree its own")
    args = parser.parse_args()
    args.release, args.demo_dir = args.release.resolve(), args.demo_dir.resolve()
    if not (args.release / "src" / "df2net").is_dir():
        sys.exit(f"no release checkout at {args.release}: git worktree add {args.release} b4114fe")
    if args.weights is None:
        args.weights = args.release / "src" / "df2net" / "weights" / "df2net_cpu.safetensors"
    args.weights = None if str(args.weights) == "own" else args.weights.resolve()
    warm_up(args)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    with tempfile.TemporaryDirectory(prefix="df2net_throughput_") as tmp:
        for mode in modes:
            if mode == "folder":
                measure("folder", args.demo_dir, args, Path(tmp))
            elif mode == "group":
                measure("group", group_photo(args.demo_dir, Path(tmp) / "group"), args, Path(tmp))
            else:
                sys.exit(f"unknown mode {mode!r} (folder, group)")


if __name__ == "__main__":
    main()
