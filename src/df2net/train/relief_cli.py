"""The ``df2net train-relief`` subcommand: argument parsing only (:mod:`df2net.train.relief` trains)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train-relief`` to the ``df2net`` command."""
    p = sub.add_parser(
        "train-relief",
        help="train the relief Fr-Net (finer stage) on synthetic renders with albedo-only marks",
        description=(
            "Train the finer stage as a high-pass relief U-Net over frozen D- and F-Nets (from --init, "
            "default the shipped weights) on `make-data synthetic` folders (best made with --marks, "
            "--plain-skin, --strong-light and --fold-gain). Writes RUN/config.json, checkpoint.pt "
            "(--resume continues), history.json, loss_curve.png and RUN/final.safetensors."
        ),
    )
    p.add_argument("--data", action="append", metavar="DIR", help="synthetic dataset folder (repeat for several)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--train-config", metavar="JSON", help="a saved config.json (flags given override it)")
    p.add_argument("--init", metavar="W", help="weights whose D- and F-Net are kept (default: shipped)")
    p.add_argument(
        "--val", metavar="DIR", help="validation renders (with marks): relief r/slope and false relief while training (and for --scan-gain; repeat for several)",
        action="append", dest="val_dirs",
    )
    p.add_argument("--mode", choices=("band", "gate", "shade"), help="what the relief network sees and does with F-Net's detail band (see df2net.model.relief)")
    p.add_argument("--init-relief", metavar="W", help="weights whose relief Fr-Net warm-starts this one (tensors that fit)")
    p.add_argument("--steps", type=int)
    p.add_argument("--time-limit", dest="time_limit_min", type=float, metavar="MIN", help="stop after this many minutes")
    p.add_argument("--batch", dest="batch_size", type=int)
    p.add_argument("--patch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--pair-weight",
        type=float,
        metavar="W",
        help="weight of the paired term: the same patch with and without its marks must get the same detail (0: off)",
    )
    p.add_argument("--max-samples", type=int, help="use at most this many samples")
    p.add_argument("--resume", action="store_true", help="continue RUN from its checkpoint")
    p.add_argument(
        "--scan-gain",
        metavar="G,G,...",
        help="instead of training: scan these output gains of RUN's finished relief network on its validation renders "
        "and write RUN/final_calibrated.safetensors with the gain whose slope is nearest 1 within --max-false",
    )
    p.add_argument("--max-false", type=float, default=float("inf"), metavar="UM", help="false-relief bound for --scan-gain (µm)")
    p.add_argument(
        "--false-reference",
        metavar="W",
        help="with --scan-gain: bound the false relief by this weights file's (e.g. the shipped one) on the same renders (means)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from df2net.errors import Df2netError
    from df2net.train.relief import ReliefTrainConfig, train_relief

    run = Path(args.out)
    if args.scan_gain:
        from df2net.train.relief import scan_gain

        try:
            try:
                gains = tuple(float(g) for g in args.scan_gain.split(","))
            except ValueError:
                raise ValueError(f"--scan-gain needs numbers separated by commas, got {args.scan_gain!r}") from None
            path = scan_gain(run, gains, args.max_false, val=args.val_dirs, reference=args.false_reference)
        except (ValueError, FileNotFoundError, Df2netError) as exc:
            print(f"df2net: error: {exc}", file=sys.stderr)
            return 2
        print(f"relief Fr-Net with the chosen gain written to {path} (scan: {run / 'gain_calibration.json'})")
        return 0
    try:
        if args.resume and (run / "config.json").is_file():
            cfg = ReliefTrainConfig.load(run / "config.json")
        elif args.train_config:
            cfg = ReliefTrainConfig.load(Path(args.train_config))
        elif args.data:
            cfg = ReliefTrainConfig(data=list(args.data), out=str(run))
        else:
            print("df2net: error: give --data DIR (or --train-config, or --resume an existing RUN)", file=sys.stderr)
            return 2
        overrides = {
            k: getattr(args, k)
            for k in ("init", "mode", "init_relief", "steps", "time_limit_min", "batch_size", "patch_size", "lr", "threads", "max_samples", "pair_weight")
            if getattr(args, k) is not None
        }
        if args.val_dirs:
            if len(args.val_dirs) > 1:
                raise ValueError("training takes one --val folder (several only for --scan-gain)")
            overrides["val"] = args.val_dirs[0]
        if args.data and (args.train_config or args.resume):
            overrides["data"] = list(args.data)
        cfg = ReliefTrainConfig(**{**cfg.__dict__, **overrides, "out": str(run)})
        path = train_relief(cfg, resume=args.resume, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    print(f"relief Fr-Net written to {path}")
    return 0
