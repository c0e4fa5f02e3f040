"""What Fr-Net adds: for each photo, crop | normals after F-Net | normals after Fr-Net | Fr-Net's detail.

    python scripts/detail_sheet.py docs/finer_detail.png ../shared/data/df2net_demo/{1,4,11,18,22}.png [--weights W]

The detail panel is the finer minus the fine depth (offset removed), grey = 0, black/white =
-/+ ``--range`` crop pixels. Used for docs/finer_detail.png (older faces of the demo photos).
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from contact_sheet import sheet_font, tile_row  # scripts/, beside this file
from df2net import Reconstructor
from df2net.errors import InputError
from df2net.export import write_rgb_png
from df2net.geometry import depth_to_normals, normals_to_rgb


def detail_strip(face, tile: int, span: float) -> np.ndarray:
    """crop | F normals | F+Fr normals | Fr detail, each tile x tile."""
    mask = face.mask
    fine, finer = face.stages["fine"], face.stages["finer"]
    added = finer - fine
    added = added - float(np.median(added[mask])) if mask.any() else added
    grey = np.clip(added / span * 127.5 + 127.5, 0, 255).astype(np.uint8)
    grey[~mask] = 0
    panels = [
        face.masked_crop,
        normals_to_rgb(depth_to_normals(fine, mask), mask),
        normals_to_rgb(depth_to_normals(finer, mask), mask),
        np.dstack([grey] * 3),
    ]
    return tile_row(panels, tile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--range", dest="span", type=float, default=1.0, help="crop pixels at black/white")
    args = parser.parse_args()
    reconstructor = Reconstructor(weights=args.weights)
    strips = []
    for path in tqdm(args.photos, desc="faces"):
        try:
            strips.append((path, detail_strip(reconstructor(path)[0], args.tile, args.span)))
        except InputError as exc:
            print(f"skipped {exc}")
    head = 16
    w = strips[0][1].shape[1]
    sheet = Image.new("RGB", (w, (args.tile + head) * len(strips) + head), "white")
    draw = ImageDraw.Draw(sheet)
    font = sheet_font(13)
    titles = ("photo crop", "normals after F-Net", "normals after Fr-Net", f"Fr-Net's detail (±{args.span:g} px)")
    for i, title in enumerate(titles):
        draw.text((i * args.tile + 4, 1), title, fill="black", font=font)
    for row, (path, strip) in enumerate(strips):
        y = head + row * (args.tile + head)
        draw.text((4, y + 1), str(path).rsplit("/", 1)[-1], fill="black", font=font)
        sheet.paste(Image.fromarray(strip), (0, y + head))
    write_rgb_png(args.output, np.asarray(sheet))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
