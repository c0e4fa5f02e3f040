"""The ``df2net`` command: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from df2net import __version__


def _reconstruct(args: argparse.Namespace) -> int:
    from df2net.batch.inputs import plan_photos
    from df2net.batch.options import ReconstructOptions
    from df2net.errors import Df2netError
    from df2net.outputs import parse_formats

    try:
        options = ReconstructOptions(
            weights=args.weights,
            device=args.device or ("cuda" if args.gpus_per_worker else "cpu"),
            backend=args.backend,
            formats=parse_formats(args.formats),
            batch_faces=args.batch_faces,
            reconstructor_kwargs={"detector": args.detector}
            | ({"min_face_size": args.min_face_size} if args.min_face_size is not None else {})
            | ({"max_megapixels": args.max_megapixels} if args.max_megapixels is not None else {}),
        )
        run = _engine(args)
        photos = plan_photos(args.inputs)
        if not photos:
            raise ValueError("no image files found in the inputs")
        summary = run(photos, Path(args.output), options)
    except (ValueError, Df2netError) as exc:  # bad arguments, inputs or weights: nothing was done
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    print(summary.line())
    skipped = summary.skipped_line(options.min_face_size)
    if skipped:
        print(skipped)
    if summary.failures:
        print(f"{len(summary.failures)} failed:", file=sys.stderr)
        for result in summary.failures:
            print(f"  {result.error}", file=sys.stderr)
    return summary.exit_status


def _engine(args: argparse.Namespace):
    """The run function of the engine ``--engine`` names, its options checked and bound.

    Called as ``run(photos, out_dir, options)``; returns a :class:`~df2net.batch.results.RunSummary`.
    """
    import functools
    import importlib.util

    common = {"progress": not args.quiet, "debug": args.debug}
    ray_options = {
        "--address": args.address,
        "--workers": args.workers,
        "--gpus-per-worker": args.gpus_per_worker,
        "--num-cpus": args.num_cpus,
    }
    if args.engine == "local":
        given = [name for name, value in ray_options.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to --engine ray")
        from df2net.batch.local import run_local

        return functools.partial(run_local, **common)
    if importlib.util.find_spec("ray") is None:
        raise ValueError("--engine ray needs Ray: pip install 'df2net[cluster]'")
    from df2net.batch.ray_engine import RayConfig, run_ray

    if args.address and args.num_cpus:
        raise ValueError("--num-cpus sizes a local cluster; a joined one (--address) has its own")
    cluster = RayConfig(
        address=args.address,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker or 0.0,
        num_cpus=args.num_cpus,
    )
    return functools.partial(run_ray, cluster=cluster, **common)


def _convert_checkpoint(args: argparse.Namespace) -> int:
    from df2net.errors import Df2netError
    from df2net.model.weights import convert_checkpoint

    try:
        convert_checkpoint(args.checkpoint, args.output)
    except Df2netError as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


def _megapixels(text: str) -> float:
    """``--max-megapixels``: a positive number."""
    from df2net.io import megapixels_to_pixels

    try:
        megapixels_to_pixels(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number of megapixels, got {text!r}") from None
    return float(text)


def _detector_names() -> list[str]:
    from df2net.detect import DETECTORS

    return sorted(DETECTORS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``df2net`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="df2net", description="One photo of a face in, a detailed 3D face out (DF2Net)."
    )
    parser.add_argument("--version", action="version", version=f"df2net {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from df2net.config import MAX_MEGAPIXELS, MIN_FACE_SIZE
    from df2net.outputs import FORMATS

    rec = sub.add_parser(
        "reconstruct",
        help="reconstruct every face in photos",
        description="Reconstruct every face in the given photos (files, folders or @lists of paths). "
        "A rerun skips the photos already done; OUT/results.parquet has a row per photo.",
        epilog="formats: " + "; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )
    rec.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="image files, folders of images, or @LIST.txt: a text file of paths, one a line",
    )
    rec.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    rec.add_argument("--weights", metavar="W", help="weights (.safetensors); default: the shipped ones")
    rec.add_argument(
        "--device", choices=["cpu", "cuda"], help="default: cuda with --gpus-per-worker, else cpu"
    )
    rec.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnxruntime"],
        help="what runs the network: onnxruntime (needs df2net[onnx]), torch, or auto (default: "
        "onnxruntime on the CPU when installed, else torch)",
    )
    rec.add_argument("--formats", metavar="LIST", help="comma-separated subset of the formats (default all)")
    rec.add_argument(
        "--detector",
        default="auto",
        choices=_detector_names(),
        help="auto (default): HOG candidates, levelled by the landmarks, confirmed by dlib's CNN; "
        "hog: HOG alone (faster, fooled more easily); cnn: the CNN over the whole photo (slow)",
    )
    rec.add_argument(
        "--min-face-size",
        type=int,
        default=None,
        metavar="PX",
        help="faces whose box side is smaller than this are skipped, and named as too small "
        f"(default {MIN_FACE_SIZE}: the smallest the detector reaches)",
    )
    rec.add_argument(
        "--max-megapixels",
        type=_megapixels,
        default=None,
        metavar="MP",
        help="photos larger than this many megapixels are refused, from their header, before "
        f"they are decoded (default {MAX_MEGAPIXELS:g})",
    )
    rec.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rec.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    rec.add_argument(
        "--batch-faces", type=int, default=4, metavar="B",
        help="faces run through the network together (default 4)",
    )
    rec.add_argument(
        "--engine", default="local", choices=["local", "ray"],
        help="local: one photo after another in this process (default); ray: a Ray Data pipeline on "
        "a local or joined Ray cluster (needs df2net[cluster])",
    )
    ray_group = rec.add_argument_group("--engine ray")
    ray_group.add_argument(
        "--address", metavar="ADDR", help="join this Ray cluster (default: start one on this machine)"
    )
    ray_group.add_argument(
        "--workers", type=int, metavar="N", help="network workers (default: 1, or one per GPU share)"
    )
    ray_group.add_argument(
        "--gpus-per-worker", type=float, metavar="G", help="GPUs per network worker (default 0: CPU)"
    )
    ray_group.add_argument(
        "--num-cpus", type=int, metavar="C", help="logical CPUs of the local cluster (default: all cores + 1)"
    )
    rec.set_defaults(func=_reconstruct)

    conv = sub.add_parser(
        "convert-checkpoint", help="convert the original DF2Net.pth.tar to df2net safetensors"
    )
    conv.add_argument("checkpoint", help="original checkpoint (DF2Net.pth.tar)")
    conv.add_argument("output", help="output .safetensors")
    conv.set_defaults(func=_convert_checkpoint)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


def _register_optional_commands() -> list:
    """Subcommands defined next to the code they drive (data, training, evaluation, serving)."""
    registers = []
    for module_name in (
        "df2net.data.cli",
        "df2net.evaluate_cli",
        "df2net.train.cli",
        "df2net.train.relief_cli",
        "df2net.web.cli",
        "df2net.onnx_export",
    ):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part of df2net is not there
            raise
        registers.append(module.register)
    return registers


_EXTRA_COMMANDS = _register_optional_commands()


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser``'s arguments, with paths placed after options still counted as the inputs.

    argparse gives a starred positional (make-data's ``inputs``) nothing when an option comes
    between it and the positional before it (``make-data synthetic --seed 1 photos/``); the
    paths left over are those inputs. Anything else left over is an error, as usual.
    """
    args, extras = parser.parse_known_args(argv)
    if extras:
        if isinstance(getattr(args, "inputs", None), list) and not any(e.startswith("-") for e in extras):
            args.inputs += extras
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``df2net``; returns the process exit status."""
    parser = build_parser()
    args = parse_args(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("df2net: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
