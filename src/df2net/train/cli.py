"""The ``df2net train`` subcommand: argument parsing only; :func:`df2net.train.loop.train` does the work.

Examples::

    df2net train --stage dense --data data/synth:3 --data data/fits:1 --out runs/dense
    df2net train --stage fine  --data data/synth --init runs/dense/final.safetensors --out runs/fine
    df2net train --out runs/fine --resume                      # continue from the latest checkpoint
    torchrun --nproc_per_node 2 -m df2net train ...            # data-parallel, same arguments
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Flags that may change when a run is resumed (the rest of its config.json stays as saved).
_RESUMABLE = (
    "steps",
    "time_limit_min",
    "num_workers",
    "device",
    "threads",
    "amp",
    "ema_decay",
    "cache_mb",
    "log_every",
    "sample_every",
    "checkpoint_every",
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``df2net`` command."""
    p = sub.add_parser(
        "train",
        help="train one stage of the network on dataset folders",
        description=(
            "Train one DF2Net stage (dense: D-Net, fine: F-Net, finer: Fr-Net) on folders made by "
            "`df2net make-data`. Writes RUN/config.json, checkpoints, logs, sample pictures and "
            "RUN/final.safetensors. Launch under torchrun for data-parallel training."
        ),
    )
    p.add_argument("--stage", choices=["dense", "fine", "finer"], help="which stage trains")
    p.add_argument(
        "--data",
        action="append",
        metavar="DIR[:WEIGHT]",
        help="dataset folder and its share of each batch (repeat for several; default weight 1)",
    )
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument(
        "--config",
        dest="model",
        metavar="NAME",
        help="model config name: cpu or original (default: that of --init, else cpu)",
    )
    p.add_argument("--init", metavar="W", help="weights to start from (the previous stage's final.safetensors)")
    p.add_argument("--steps", type=int, help="optimiser steps in all")
    p.add_argument(
        "--time-limit",
        dest="time_limit_min",
        type=float,
        metavar="MIN",
        help="also stop after this many minutes of training (the learning rate decays over whichever comes first)",
    )
    p.add_argument("--batch", dest="batch_size", type=int, help="batch size per process")
    p.add_argument("--lr", type=float, help="peak learning rate (Adam)")
    p.add_argument("--warmup", dest="warmup_steps", type=int, help="warm-up steps")
    p.add_argument("--train-size", type=int, help="network input side during training (default: the model's)")
    p.add_argument("--workers", dest="num_workers", type=int, help="data-loading worker processes (0: none)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="device (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's)")
    p.add_argument("--patch-size", type=int, help="finer stage: train Fr-Net on random squares of this side")
    p.add_argument(
        "--zero-detail",
        action="store_const",
        const=True,
        help="finer stage: start Fr-Net's last layer at zero, so training starts at F's depth",
    )
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="forward pass under bfloat16 autocast (CUDA, or a CPU with AVX-512 BF16: about 3x faster; "
        "the depth layers stay float32, but D-Net's output level drifts: train F on it afterwards, "
        "or use a level-free F, ModelConfig.fine_level_ref)",
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        help="keep a moving average of the weights with this decay (e.g. 0.999) and export it as "
        "RUN/final.safetensors (the last step's weights: RUN/final_raw.safetensors)",
    )
    p.add_argument("--dropout", type=float, help="D-Net decoder dropout while training (default: the released 0.5)")
    p.add_argument("--cache-mb", type=int, help="memory per data process for keeping loaded samples (default 3072)")
    p.add_argument("--seed", type=int)
    p.add_argument("--log-every", type=int, help="steps between loss logs and loss-curve updates")
    p.add_argument("--sample-every", type=int, help="steps between sample pictures")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--no-augment", action="store_true", help="turn every augmentation off")
    p.add_argument(
        "--pair",
        type=float,
        metavar="W",
        help="dense/fine: weight of what albedo-only marks change in the depth (renders made with "
        "make-data synthetic --marks train with their unmarked twin)",
    )
    p.add_argument("--pair-band", type=float, metavar="W", help="dense/fine: the same in the relief band (high-pass)")
    p.add_argument(
        "--region-boost",
        type=float,
        metavar="X",
        help="pixels in the mouth and eyes (from each sample's landmarks.json) weigh 1 + X in the "
        "depth, normal, gradient and band terms (default 0: off)",
    )
    p.add_argument("--train-config", metavar="JSON", help="a saved TrainConfig to start from (flags override it)")
    p.add_argument("--resume", action="store_true", help="continue RUN from its latest checkpoint")
    p.add_argument("--export", metavar="PATH", help="also write the final weights (.safetensors) here")
    p.set_defaults(func=_run)


def build_config(args: argparse.Namespace) -> tuple[object, list[str]]:
    """The :class:`TrainConfig` the arguments ask for, and notes about ignored flags."""
    from df2net.train.config import CONFIG_FILE, AugmentConfig, DataSource, LossConfig, TrainConfig

    notes: list[str] = []
    flags = {
        name: getattr(args, name)
        for name in (
            "stage",
            "model",
            "init",
            "steps",
            "time_limit_min",
            "batch_size",
            "lr",
            "warmup_steps",
            "train_size",
            "num_workers",
            "device",
            "threads",
            "seed",
            "patch_size",
            "dropout",
            "zero_detail",
            "amp",
            "ema_decay",
            "cache_mb",
            "log_every",
            "sample_every",
            "checkpoint_every",
        )
        if getattr(args, name) is not None
    }
    saved = Path(args.out) / CONFIG_FILE
    if args.resume and saved.is_file():
        config = TrainConfig.load(saved)
        changes = {k: v for k, v in flags.items() if k in _RESUMABLE}
        ignored = sorted(set(flags) - set(changes))
        ignored += ["data"] if args.data else []
        ignored += ["no_augment"] if args.no_augment else []
        ignored += [name for name in ("pair", "pair_band", "region_boost") if getattr(args, name) is not None]
        if ignored:
            notes.append(f"resuming {args.out}: its config.json is kept; ignored: {', '.join(ignored)}")
        return config.replace(**changes, out=str(args.out)), notes
    if args.resume:
        notes.append(f"{saved} not found: starting a new run")
    base = TrainConfig.load(args.train_config).to_dict() if args.train_config else {}
    if "stage" in flags and base.get("stage") != flags["stage"]:
        base.pop("losses", None)  # the stage's own default loss weights
    base.update(flags)
    base["out"] = str(args.out)
    if args.data:
        base["data"] = [vars(DataSource.parse(d)) for d in args.data]
    if args.no_augment:
        base["augment"] = vars(AugmentConfig.off())
    for flag, term in ((args.pair, "pair"), (args.pair_band, "pair_band"), (args.region_boost, "region_boost")):
        if flag is not None:
            losses = base.get("losses") or vars(LossConfig.for_stage(base.get("stage", "dense")))
            base["losses"] = {**losses, term: flag}
    if "stage" not in base:
        raise ValueError("--stage is needed for a new run")
    if not base.get("data"):
        raise ValueError("--data is needed for a new run")
    return TrainConfig.from_dict(base), notes


def _run(args: argparse.Namespace) -> int:
    from df2net.errors import Df2netError

    main_process = os.environ.get("RANK", "0") == "0"
    try:
        config, notes = build_config(args)
    except (ValueError, OSError) as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    if main_process:
        for note in notes:
            print(f"df2net: note: {note}", file=sys.stderr)

    from df2net.io import write_bytes_atomic
    from df2net.train import distributed
    from df2net.train.loop import train

    try:
        weights = train(config, resume=args.resume)  # type: ignore[arg-type]
        if args.export and main_process:
            write_bytes_atomic(args.export, Path(weights).read_bytes())
    except (Df2netError, ValueError, FileExistsError) as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()
    if main_process:
        print(f"wrote {weights}" + (f" and {args.export}" if args.export else ""))
    return 0
