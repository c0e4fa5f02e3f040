"""The ``df2net`` command: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from df2net import __version__


def _reconstruct(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from df2net.errors import Df2netError
    from df2net.io import iter_image_files
    from df2net.outputs import face_folder, parse_formats
    from df2net.reconstruct import Reconstructor

    try:
        formats = parse_formats(args.formats)
    except ValueError as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    files = iter_image_files([Path(p) for p in args.inputs])
    if not files:
        print("df2net: error: no image files found in the inputs", file=sys.stderr)
        return 2
    try:
        reconstructor = Reconstructor(weights=args.weights, device=args.device, backend=args.backend)
    except Df2netError as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2

    out_dir = Path(args.output)
    stems = _unique_stems(files)
    failures: list[str] = []
    n_faces = 0
    bar = tqdm(files, desc="reconstruct", unit="photo", disable=args.quiet)
    for path in bar:
        bar.set_postfix_str(path.name)
        try:
            faces = reconstructor(path)
            for face in faces:
                face.save(face_folder(out_dir, stems[path], face.index), formats)
            n_faces += len(faces)
            if not args.quiet:
                tqdm.write(f"{path}: {len(faces)} face(s) -> {out_dir / stems[path]}")
        except Df2netError as exc:
            failures.append(str(exc))
            tqdm.write(f"error: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # an unexpected failure of one file must not stop the batch
            if args.debug:
                raise
            message = f"{path}: internal error: {type(exc).__name__}: {exc}".splitlines()[0]
            failures.append(message)
            tqdm.write(f"error: {message}", file=sys.stderr)
    bar.close()
    done = len(files) - len(failures)
    print(f"{done}/{len(files)} photo(s) reconstructed, {n_faces} face(s) written to {out_dir}")
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _unique_stems(files: list[Path]) -> dict[Path, str]:
    """Output folder name per input: its stem, made unique when two inputs share one."""
    seen: dict[str, int] = {}
    stems: dict[Path, str] = {}
    for path in files:
        stem = path.stem
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        stems[path] = stem if count == 0 else f"{stem}-{count + 1}"
    return stems


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``df2net`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="df2net", description="One photo of a face in, a detailed 3D face out (DF2Net)."
    )
    parser.add_argument("--version", action="version", version=f"df2net {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from df2net.outputs import FORMATS

    rec = sub.add_parser(
        "reconstruct",
        help="reconstruct every face in photos",
        description="Reconstruct every face in the given photos (files or folders).",
        epilog="formats: " + "; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )
    rec.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    rec.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    rec.add_argument("--weights", metavar="W", help="weights (.safetensors); default: the shipped ones")
    rec.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    rec.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnxruntime"],
        help="what runs the network: onnxruntime (needs df2net[onnx]), torch, or auto (default: "
        "onnxruntime on the CPU when installed, else torch)",
    )
    rec.add_argument("--formats", metavar="LIST", help="comma-separated subset of the formats (default all)")
    rec.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rec.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``df2net``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
