"""Faces per second of ``df2net reconstruct --engine ray`` against the local engine, on this machine.

Run by hand (not a test); needs the ``cluster`` extra and about three minutes per repeat on 2 cores:

    python benchmarks/ray_engine.py [--demo-dir DIR] [--copies 1] [--repeats 1] [--formats all]
                                    [--num-cpus N] [--workers 1] [--batch-faces 4]

Each repeat runs the whole command once per engine (alternating which goes first), each into a
fresh output folder, with the shipped weights, on the demo photos (``--copies N``: each of them
N times, as differently named copies, to see the rate once the workers' start is paid), and
prints:

1. per engine: the command's wall time (Python start to exit, a local Ray cluster's start
   included), the run time the command reports (from loading the model to the last file: what
   its faces/s is), the faces, and faces/s of both; then the ratio Ray / local;
2. per engine, from ``results.parquet``: the median seconds per face of each step (load,
   detection and crop, network, writing) and the megabytes written per face, the numbers the
   cluster estimate in ``benchmarks/README.md`` is made from.

Medians over the repeats; on a shared machine absolute times move with the load, the
interleaved ratios less.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEMO_DIR = (ROOT / ".." / "shared" / "data" / "df2net_demo").resolve()
ENGINES = ("local", "ray")
STEPS = ("load_s", "detect_crop_s", "network_s", "write_s")
SUMMARY = re.compile(r"(\d+) face\(s\) in ([\d.]+) s \(([\d.]+) faces/s\)")


def photo_folder(args: argparse.Namespace, tmp: Path) -> Path:
    """The demo photos, or a folder of ``--copies`` links to each."""
    if args.copies == 1:
        return args.demo_dir
    folder = tmp / "photos"
    folder.mkdir()
    for photo in sorted(args.demo_dir.glob("*.png")):
        for i in range(args.copies):
            (folder / f"{photo.stem}_{i}{photo.suffix}").symlink_to(photo.resolve())
    return folder


def run_once(engine: str, args: argparse.Namespace, photos: Path, out: Path) -> dict:
    """One command; returns its wall time, reported run time, faces and per-face step times."""
    import pyarrow.parquet as pq

    cmd = [sys.executable, "-m", "df2net", "reconstruct", str(photos), "-o", str(out), "-q",
           "--batch-faces", str(args.batch_faces)]
    if args.formats != "all":
        cmd += ["--formats", args.formats]
    if engine == "ray":
        cmd += ["--engine", "ray", "--workers", str(args.workers)]
        if args.num_cpus:
            cmd += ["--num-cpus", str(args.num_cpus)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    match = SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        sys.exit(f"{engine} run failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    rows = [r for r in pq.read_table(out / "results.parquet").to_pylist() if r["status"] == "ok"]
    per_face = {s: statistics.median(r[s] / r["faces"] for r in rows) for s in STEPS}
    faces = int(match.group(1))
    written = sum(p.stat().st_size for p in out.glob("*/face*/*"))
    return {"wall": wall, "run": float(match.group(2)), "faces": faces, "mb_per_face": written / faces / 1e6,
            **per_face}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=DEFAULT_DEMO_DIR)
    parser.add_argument("--copies", type=int, default=1, help="each demo photo this many times")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--formats", default="all", help="output formats (default: all, as the CLI)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray cluster (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="network actors of the Ray engine")
    parser.add_argument("--batch-faces", type=int, default=4)
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {e: [] for e in ENGINES}
    with tempfile.TemporaryDirectory(prefix="df2net_ray_bench_") as tmp:
        photos = photo_folder(args, Path(tmp))
        for repeat in range(args.repeats):
            order = ENGINES if repeat % 2 == 0 else ENGINES[::-1]
            for engine in order:
                result = run_once(engine, args, photos, Path(tmp) / f"{engine}{repeat}")
                runs[engine].append(result)
                print(f"repeat {repeat + 1}/{args.repeats} {engine}: {result['faces']} faces, "
                      f"run {result['run']:.1f} s, wall {result['wall']:.1f} s", file=sys.stderr)

    med = {e: {k: statistics.median(r[k] for r in runs[e]) for k in runs[e][0]} for e in ENGINES}
    load = os.getloadavg()[0]
    copies = f" x{args.copies}" if args.copies > 1 else ""
    print(f"#### Ray engine vs local engine: {args.demo_dir.name}{copies}, formats {args.formats}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at the end, repeats {args.repeats}\n")
    print("| engine | faces | command wall s | run s | faces/s (run) | faces/s (wall) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for e in ENGINES:
        m = med[e]
        print(f"| {e} | {m['faces']:.0f} | {m['wall']:.1f} | {m['run']:.1f} | "
              f"{m['faces'] / m['run']:.2f} | {m['faces'] / m['wall']:.2f} |")
    ratio_run = (med["ray"]["faces"] / med["ray"]["run"]) / (med["local"]["faces"] / med["local"]["run"])
    ratio_wall = (med["ray"]["faces"] / med["ray"]["wall"]) / (med["local"]["faces"] / med["local"]["wall"])
    print(f"\nRay / local faces/s: {ratio_run:.2f}x (run), {ratio_wall:.2f}x (wall)\n")
    print("| seconds per face (median) | " + " | ".join(s.removesuffix("_s") for s in STEPS) + " | MB written |")
    print("| --- |" + " --- |" * (len(STEPS) + 1))
    for e in ENGINES:
        print(f"| {e} | " + " | ".join(f"{med[e][s]:.3f}" for s in STEPS) + f" | {med[e]['mb_per_face']:.1f} |")


if __name__ == "__main__":
    main()
