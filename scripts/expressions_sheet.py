"""Before and after: faces with open mouths and strong wrinkles, shaded from the front and turned.

    python scripts/expressions_sheet.py docs/expressions.png ../shared/data/df2net_demo/{22,19,4,1}.png \\
        --before OLD.safetensors --after NEW.safetensors

One row per photo: the crop, then for each weights file the mesh shaded from the front and
turned 45 degrees and lit from the side (``df2net.preview``'s renders).
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

from contact_sheet import sheet_font, tile_row  # scripts/, beside this file
from df2net import Reconstructor
from df2net.export import write_rgb_png
from df2net.preview import FRONT_LIGHT, SIDE_LIGHT, SIDE_VIEW_DEGREES, render_shaded
from df2net.render import vertex_normals


def views(face, size: int) -> list[np.ndarray]:
    """The face's mesh shaded from the front and turned."""
    mesh = face.surface
    normals = vertex_normals(mesh.vertices, mesh.faces)
    return [
        render_shaded(mesh, size, FRONT_LIGHT, normals=normals),
        render_shaded(mesh, size, SIDE_LIGHT, view_rotation=SIDE_VIEW_DEGREES, normals=normals),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--before", required=True, help="weights before (e.g. the previous shipped file)")
    ap.add_argument("--after", default=None, help="weights after (default: the shipped ones)")
    ap.add_argument("--names", nargs=2, default=("before", "after"), help="what to call the two weights in the captions")
    ap.add_argument("--tile", type=int, default=256)
    args = ap.parse_args()
    recs = [("before", Reconstructor(weights=args.before)), ("after", Reconstructor(weights=args.after))]
    rows = []
    for photo in args.photos:
        panels: list[np.ndarray] = []
        for i, (_, rec) in enumerate(recs):
            face = max(rec(photo), key=lambda f: f.mask.sum())
            if i == 0:
                panels.append(face.masked_crop)
            panels += views(face, args.tile)
        rows.append(tile_row(panels, args.tile, gap=4))
    sheet = np.concatenate([np.concatenate([r, np.full((4, r.shape[1], 3), 255, np.uint8)]) for r in rows])
    head = Image.new("RGB", (sheet.shape[1], 28), "white")
    draw = ImageDraw.Draw(head)
    font = sheet_font(16)
    t = args.tile + 4
    b, a = args.names
    for j, caption in enumerate(["photo", f"{b}: front", f"{b}: turned", f"{a}: front", f"{a}: turned"]):
        draw.text((j * t + 6, 6), caption, fill=(0, 0, 0), font=font)
    write_rgb_png(args.out, np.concatenate([np.asarray(head), sheet]))


if __name__ == "__main__":
    main()
