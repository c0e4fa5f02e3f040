"""The ``df2net make-data`` subcommand (argument parsing only)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``make-data`` to the ``df2net`` command."""
    p = sub.add_parser(
        "make-data",
        help="make training/evaluation data (3DMM fits of photos, synthetic faces)",
        description=(
            "fits: fit a face model to photos' landmarks and render its depth into df2net's crop. "
            "synthetic: random faces of the face model with photo textures, SH lighting and "
            "procedural wrinkles, with exact depth and normals. Needs the train extra (eos-py)."
        ),
    )
    p.add_argument("kind", choices=["fits", "synthetic"])
    p.add_argument("inputs", nargs="*", help="photos or folders (fits: to fit; synthetic: texture sources)")
    p.add_argument("--out", "-o", required=True, help="dataset folder (resumes if it exists)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=None, help="synthetic: samples (default 16); fits: max photos")
    p.add_argument(
        "--face-model",
        choices=["ict", "sfm"],
        default="ict",
        help="the face world: ict (ICT Face Model Light: light-stage identities, 57 expressions, mouth interior; default) "
        "or sfm (Surrey Face Model, the world of the sets made before it)",
    )
    p.add_argument("--sfm-dir", default=None, help="Surrey Face Model folder (default ../shared/data/sfm; the ICT world uses its UV layout)")
    p.add_argument("--ict-model", default=None, help="ICT model npz (default ../shared/data/ict_face_model/ict_face_model_light.npz)")
    p.add_argument("--texture-cache", default=None, help="folder of cached photo textures (default OUT/textures)")
    p.add_argument("--workers", type=int, default=1, help="processes")
    p.add_argument("--no-detail", action="store_true", help="synthetic: no procedural wrinkles")
    p.add_argument("--detail-gain", type=float, default=1.0, help="synthetic: scale of the wrinkle and pore depths")
    p.add_argument(
        "--plain-skin",
        type=float,
        default=0.0,
        metavar="P",
        help="synthetic: share of faces whose skin texture is low-passed (no photo wrinkles in it)",
    )
    p.add_argument(
        "--fold-gain",
        type=float,
        default=1.0,
        metavar="G",
        help="synthetic: folds of older faces (forehead, frown, nasolabial) up to G times deeper (1.7: 0.5-3 mm)",
    )
    p.add_argument(
        "--strong-light",
        type=float,
        default=0.0,
        metavar="P",
        help="synthetic: share of faces lit by a strong side or top light (60-88 degrees, little ambient)",
    )
    p.add_argument(
        "--marks",
        type=float,
        default=0.0,
        metavar="P",
        help="synthetic: share of faces wearing albedo-only marks (freckles, moles, pencil lines, stubble, "
        "brow hairs); they get marks_mask.png and image_unmarked.png",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from df2net.data.make import make_data
    from df2net.data.marks import MarksConfig
    from df2net.data.synthetic import SyntheticConfig

    try:
        result = make_data(
            args.kind,
            args.inputs,
            args.out,
            seed=args.seed,
            count=args.count,
            face_model=args.face_model,
            sfm_dir=args.sfm_dir,
            ict_path=args.ict_model,
            texture_cache=args.texture_cache,
            workers=args.workers,
            detail=not args.no_detail,
            config=SyntheticConfig(
                detail_gain=args.detail_gain,
                plain_skin_prob=args.plain_skin,
                fold_gain=args.fold_gain,
                strong_light_prob=args.strong_light,
                marks=MarksConfig(prob=args.marks) if args.marks > 0 else None,
            ),
            progress=not args.quiet,
        )
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(result.samples)} sample(s) in {result.out} ({result.written} new, {result.skipped} kept, "
        f"{result.seconds_per_sample:.2f} s per sample); contact sheet: {result.out / 'contact_sheet.png'}"
    )
    if result.failed:
        print(f"{len(result.failed)} failed:", file=sys.stderr)
        for line in result.failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0
