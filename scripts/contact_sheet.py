"""Reconstruct a folder of photos and put every face on one contact sheet, one row per face.

    python scripts/contact_sheet.py ../shared/data/df2net_demo docs/demo_previews.png [--weights W] [--tile PX]

Each row is one face: its label (photo name and face index), then the masked photo crop, the
shaded mesh from the front, the mesh turned 45 degrees, and the normal map; a header row names the
columns. Photos are taken in numeric order (1.png, 2.png, ..., 26.png); a photo with several faces
gets a row for each, one without a face is reported and left out. Used for docs/demo_previews.png
(the 25 DF2Net demo photos with the shipped weights; 10.5 minutes, niced, on two cores shared with
a training job and other tests).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from df2net import Reconstructor
from df2net.errors import InputError
from df2net.export import write_rgb_png
from df2net.geometry import normals_to_rgb
from df2net.io import iter_image_files
from df2net.preview import render_shaded

#: The columns of a face's row, left to right (the header row's names).
COLUMNS = ("photo (masked crop)", "mesh, front", "mesh, turned 45°", "normals")
GAP = 4  # white pixels between tiles and between rows
LABEL_WIDTH = 84  # the label column at the left of every row
HEADER_HEIGHT = 24


def tile_row(panels: list[np.ndarray], tile: int, gap: int = 0) -> np.ndarray:
    """Pictures resized to tile x tile, side by side, ``gap`` white pixels apart."""
    tiles = [np.asarray(Image.fromarray(p).resize((tile, tile), Image.BILINEAR)) for p in panels]
    spacer = np.full((tile, gap, 3), 255, np.uint8)
    parts = [part for t in tiles for part in (t, spacer)][:-1] if gap else tiles
    return np.concatenate(parts, 1)


def face_strip(face, tile: int, gap: int = 0) -> np.ndarray:
    """crop | shaded front | shaded turned | normals (:data:`COLUMNS`), each tile x tile."""
    mesh = face.surface
    panels = [
        face.masked_crop,
        render_shaded(mesh, tile, light_dir=(-0.4, 0.4, 1.0)),
        render_shaded(mesh, tile, light_dir=(0.8, 0.3, 0.6), view_rotation=45.0),
        normals_to_rgb(face.normals, face.mask),
    ]
    return tile_row(panels, tile, gap)


def sheet_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` pixels (its small bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def contact_sheet(rows: list[tuple[str, np.ndarray]], tile: int) -> np.ndarray:
    """A header row naming :data:`COLUMNS`, then one labelled row per ``(label, strip)``."""
    width = LABEL_WIDTH + len(COLUMNS) * tile + (len(COLUMNS) - 1) * GAP
    height = HEADER_HEIGHT + len(rows) * (tile + GAP)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    header, label_font = sheet_font(13), sheet_font(14)
    for i, name in enumerate(COLUMNS):
        x = LABEL_WIDTH + i * (tile + GAP) + tile // 2
        draw.text((x, HEADER_HEIGHT // 2), name, fill="black", font=header, anchor="mm")
    for r, (label, strip) in enumerate(rows):
        y = HEADER_HEIGHT + r * (tile + GAP)
        draw.multiline_text((6, y + tile // 2), label, fill="black", font=label_font, anchor="lm", spacing=4)
        sheet.paste(Image.fromarray(strip), (LABEL_WIDTH, y))
    return np.asarray(sheet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder of photos (or one photo)")
    parser.add_argument("output", help="PNG to write, e.g. docs/demo_previews.png")
    parser.add_argument("--weights", default=None, help="safetensors weights (default: the shipped ones)")
    parser.add_argument("--tile", type=int, default=160, help="side of each picture in pixels (default 160)")
    args = parser.parse_args()
    start = time.perf_counter()
    reconstructor = Reconstructor(weights=args.weights)
    files = iter_image_files([Path(args.folder)])
    files.sort(key=lambda p: (len(p.stem), p.stem))
    rows: list[tuple[str, np.ndarray]] = []
    for path in tqdm(files, desc="photos"):
        try:
            faces = reconstructor(path)
        except InputError as exc:
            print(f"skipped {exc}", file=sys.stderr)
            continue
        for face in faces:
            rows.append((f"{path.name}\nface {face.index}", face_strip(face, args.tile, GAP)))
    if not rows:
        raise SystemExit(f"no face found in {args.folder}")
    write_rgb_png(args.output, contact_sheet(rows, args.tile))
    print(f"wrote {args.output} ({len(rows)} faces of {len(files)} photos) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
