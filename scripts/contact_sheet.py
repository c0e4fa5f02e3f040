"""Reconstruct a folder of photos and put every face's preview on one contact sheet.

    python scripts/contact_sheet.py ../shared/data/df2net_demo docs/demo_previews.png [--weights W]

Used for docs/demo_previews.png (the 25 DF2Net demo photos with the shipped weights).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from df2net import Reconstructor
from df2net.errors import InputError
from df2net.export import write_rgb_png
from df2net.geometry import normals_to_rgb
from df2net.io import iter_image_files
from df2net.preview import render_shaded


def tile_row(panels: list[np.ndarray], tile: int) -> np.ndarray:
    """Pictures resized to tile x tile, side by side."""
    return np.concatenate([np.asarray(Image.fromarray(p).resize((tile, tile), Image.BILINEAR)) for p in panels], 1)


def face_strip(face, tile: int) -> np.ndarray:
    """crop | shaded front | shaded side | normals, each tile x tile."""
    mesh = face.surface
    panels = [
        face.masked_crop,
        render_shaded(mesh, tile, light_dir=(-0.4, 0.4, 1.0)),
        render_shaded(mesh, tile, light_dir=(0.8, 0.3, 0.6), view_rotation=45.0),
        normals_to_rgb(face.normals, face.mask),
    ]
    return tile_row(panels, tile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("output")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--tile", type=int, default=160)
    parser.add_argument("--columns", type=int, default=2)
    args = parser.parse_args()
    reconstructor = Reconstructor(weights=args.weights)
    files = iter_image_files([Path(args.folder)])
    files.sort(key=lambda p: (len(p.stem), p.stem))
    strips, names = [], []
    for path in tqdm(files, desc="faces"):
        try:
            faces = reconstructor(path)
        except InputError as exc:
            print(f"skipped {exc}")
            continue
        strips.append(face_strip(faces[0], args.tile))
        names.append(path.name)
    rows = -(-len(strips) // args.columns)
    h, w = strips[0].shape[:2]
    sheet = Image.new("RGB", (w * args.columns, (h + 14) * rows), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (strip, name) in enumerate(zip(strips, names)):
        x, y = (i % args.columns) * w, (i // args.columns) * (h + 14)
        draw.text((x + 4, y + 1), name, fill="black")
        sheet.paste(Image.fromarray(strip), (x, y + 14))
    write_rgb_png(args.output, np.asarray(sheet))
    print(f"wrote {args.output} ({len(strips)} faces)")


if __name__ == "__main__":
    main()
