"""Time the DF2Net network on CPU: each stage and the whole net, original size against the CPU config.

Run by hand (not a test):

    python benchmarks/network.py [--repeats 5] [--warmup 1] [--threads N] [--configs original cpu]

Weights are random (timing does not depend on them). Each config runs in its own process, so the
peak resident memory reported (``resource.getrusage``) is that config's alone. Input: one RGB crop
of ``input_size`` (512) on the CPU, under ``torch.inference_mode()``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from df2net.model import MODEL_CONFIGS, build_model


def _time(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(name: str, repeats: int, warmup: int) -> dict:
    """Stage and whole-net timings, parameter counts and peak RSS of one config (this process)."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    cfg = model.config
    x = torch.rand(1, 3, cfg.input_size, cfg.input_size) * 2 - 1
    with torch.inference_mode():
        x_dense = x if cfg.dense_size == cfg.input_size else F.interpolate(x, size=cfg.dense_size, mode="area")
        dense = model.dense_depth(x_dense)
        fine = model.FNet(dense, x_dense)
        fine_up = F.interpolate(fine, size=cfg.input_size, mode="bilinear", align_corners=False)
        stages = {
            "D": lambda: model.dense_depth(x_dense),
            "F": lambda: model.FNet(dense, x_dense),
            "Fr": lambda: model.FrNet(fine_up, x),
            "whole": lambda: model(x),
        }
        times = {stage: _time(fn, repeats, warmup) for stage, fn in stages.items()}
    total, f_params, fr_params = _count(model), _count(model.FNet), _count(model.FrNet)
    return {
        "config": name,
        "times": times,
        "params": {"D": total - f_params - fr_params, "F": f_params, "Fr": fr_params, "whole": total},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "input_size": cfg.input_size,
        "dense_size": cfg.dense_size,
    }


def _print_table(results: list[dict]) -> None:
    print(f"DF2Net forward on CPU, batch 1, torch {torch.__version__}, {results[0]['threads']} threads")
    print(f"{'config':<9} {'stage':<6} {'size':>5} {'params':>11} {'median s':>9} {'min s':>8} {'max s':>8}")
    for r in results:
        for stage, times in r["times"].items():
            size = r["input_size"] if stage in ("Fr", "whole") else r["dense_size"]
            print(
                f"{r['config']:<9} {stage:<6} {size:>5} {r['params'][stage]:>11,} "
                f"{statistics.median(times):>9.3f} {min(times):>8.3f} {max(times):>8.3f}"
            )
        print(f"{r['config']:<9} peak RSS {r['peak_rss_mb']:.0f} MB")
    by_name = {r["config"]: r for r in results}
    if {"original", "cpu"} <= by_name.keys():
        cpu, orig = by_name["cpu"], by_name["original"]
        ratio = statistics.median(cpu["times"]["whole"]) / statistics.median(orig["times"]["whole"])
        print(
            f"cpu/original: time {ratio:.3f} ({1 / ratio:.1f}x faster), "
            f"params {cpu['params']['whole'] / orig['params']['whole']:.3f}, "
            f"peak RSS {cpu['peak_rss_mb'] / orig['peak_rss_mb']:.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per stage (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--configs", nargs="+", default=["original", "cpu"], choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.configs[0], args.repeats, args.warmup)))
        return 0
    results = []
    for name in args.configs:
        command = [sys.executable, __file__, "--child", "--configs", name]
        command += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    _print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
