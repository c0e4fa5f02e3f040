"""The ``df2net evaluate`` subcommand (argument parsing only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the ``df2net`` command."""
    p = sub.add_parser(
        "evaluate",
        help="depth, normal and fine-detail scores on a dataset made by make-data",
        description="Score the 3DMM baselines and df2net (after each stage) on a dataset folder: "
        "depth and normal errors, relief reproduced where the base is smooth, and false relief "
        "under albedo-only marks.",
    )
    p.add_argument("dataset", help="dataset folder written by `df2net make-data`")
    p.add_argument("--weights", help="df2net weights (.safetensors); default: the shipped ones")
    p.add_argument("--no-model", action="store_true", help="score only the 3DMM baselines")
    p.add_argument("--no-baselines", action="store_true", help="score only df2net")
    p.add_argument("--sfm-dir", default=None, help="Surrey Face Model folder (default ../shared/data/sfm)")
    p.add_argument("-o", "--output", default=None, help="folder for table.csv/json/txt/md and figure.png")
    p.add_argument(
        "--save-depth",
        action="store_true",
        help="also write each method's raw depth (crop pixels, unaligned) as OUTPUT/depth/<sample>/<method>.npy",
    )
    p.add_argument(
        "--ict-model",
        default=None,
        help="ICT model npz for the ICT landmark-fit baseline (default ../shared/data/ict_face_model/...; 'none' leaves it out)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N samples only")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from df2net.errors import Df2netError
    from df2net.evaluate import df2net_method, evaluate

    dataset = Path(args.dataset)
    if not (dataset / "manifest.json").exists():
        print(f"df2net: error: {dataset}: not a dataset folder (no manifest.json)", file=sys.stderr)
        return 2
    methods = []
    try:
        if not args.no_baselines:
            from df2net.data.baselines import baseline_method, ict_baseline_method

            methods.append(baseline_method(args.sfm_dir))
            if args.ict_model != "none":
                methods.append(ict_baseline_method(args.sfm_dir, args.ict_model))
        if not args.no_model:
            methods.append(df2net_method(args.weights, args.device))
    except (Df2netError, ModuleNotFoundError) as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    if not methods:
        print("df2net: error: nothing to evaluate", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else dataset / "evaluation"
    report = evaluate(dataset, methods, out_dir=out, limit=args.limit, save_depth=args.save_depth)
    print(report.table())
    print("wrote " + ", ".join(str(f) for f in report.files))
    if args.save_depth:
        print(f"depth maps in {out / 'depth'}")
    return 0
