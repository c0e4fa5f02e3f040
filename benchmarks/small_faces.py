"""How the depth of a small face compares with the same face at full size (current weights).

    python benchmarks/small_faces.py [--weights W] [--widths 40,64,80,112,160,224] [--faces 12]

Each demo photo (faces about 250-370 px wide) is shrunk so its face's jaw is each width, then
reconstructed as usual: the face is found again and its crop enlarged to 512 px. The small face's
final depth is resampled into the full-size face's crop (the two crops' boxes are known in their
photos), put in the same units, its offset removed (median difference), and compared inside both
masks: RMS depth difference as a share of the full-size face's depth range inside the mask,
median angle between the normals, and the correlation of the fine detail (depth minus a
Gaussian of 2 crop px). Printed as a Markdown table of medians over the faces; nothing is trained.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO.parent / "shared" / "data" / "df2net_demo"


def compare(full, small, scale: float) -> dict[str, float]:
    """``small`` (a FaceResult of the photo shrunk by ``scale``) against ``full``, in ``full``'s crop."""
    from scipy import ndimage

    from df2net.cropbox import crop_to_image, image_to_crop
    from df2net.data.maps import sample_bilinear
    from df2net.geometry import depth_to_normals

    size = full.crop.shape[0]
    vv, uu = np.mgrid[0:size, 0:size].astype(np.float64)
    img_full = crop_to_image(np.stack([uu, vv], -1), full.crop_box, size)
    img_small = (img_full + 0.5) * scale - 0.5  # the same photo point in the shrunk photo
    q = image_to_crop(img_small, small.crop_box, size)
    inside = (q >= 0).all(-1) & (q <= size - 1).all(-1)
    mask_s = sample_bilinear(small.mask.astype(np.float32), q[..., 0], q[..., 1]) > 0.99
    # A crop pixel of the small face is small.side / scale / full.side crop pixels of the full one.
    unit = (small.crop_box[2] / scale) / full.crop_box[2]
    d_small = sample_bilinear(small.depth, q[..., 0], q[..., 1]) * unit
    both = full.mask & mask_s & inside
    d_full = full.depth.astype(np.float64)
    diff = d_small[both] - d_full[both]
    diff -= np.median(diff)
    span = float(np.percentile(d_full[full.mask], 99) - np.percentile(d_full[full.mask], 1))
    filled = np.where(both, d_small, 0.0).astype(np.float32)
    n_full, n_small = depth_to_normals(full.depth, both), depth_to_normals(filled, both)
    cos = np.clip((n_full[both] * n_small[both]).sum(-1), -1, 1)

    def detail(d):
        return d - ndimage.gaussian_filter(np.where(both, d, 0.0), 2.0) / np.maximum(ndimage.gaussian_filter(both.astype(float), 2.0), 1e-6)

    core = ndimage.binary_erosion(both, iterations=10)
    r = np.corrcoef(detail(d_full)[core], detail(np.where(both, d_small, 0.0))[core])[0, 1]
    return {"rms_share": float(np.sqrt(np.mean(diff**2)) / span), "normal_deg": float(np.degrees(np.median(np.arccos(cos)))),
            "detail_r": float(r), "overlap": float(both.sum() / full.mask.sum())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--demo-dir", type=Path, default=DEMO_DIR)
    ap.add_argument("--widths", default="40,64,80,112,160,224")
    ap.add_argument("--faces", type=int, default=12)
    from df2net.config import DetectConfig
    from df2net.detect import FACE_BOXES

    default_box = DetectConfig().face_box
    ap.add_argument("--face-box", choices=FACE_BOXES, default=default_box, help=f"DetectConfig.face_box (default {default_box!r}, as df2net)")
    args = ap.parse_args(argv)

    import torch

    from df2net import Reconstructor
    from df2net.errors import InputError
    from df2net.io import load_image

    torch.set_num_threads(2)
    rec = Reconstructor(weights=args.weights, min_face_size=20)
    rec.detector.cfg = replace(rec.detector.cfg, face_box=args.face_box)
    widths = [int(w) for w in args.widths.split(",")]
    rows: dict[int, list[dict[str, float]]] = {w: [] for w in widths}
    missed = {w: 0 for w in widths}
    paths = sorted(args.demo_dir.glob("*.png"), key=lambda p: int(p.stem))[: args.faces]
    full_widths = []
    for path in paths:
        rgb = load_image(path).rgb
        full = rec(rgb, source=path.name)[0]
        jaw = float(np.linalg.norm(full.landmarks_image[16] - full.landmarks_image[0]))
        full_widths.append(jaw)
        for w in widths:
            scale = w / jaw
            h, wd = rgb.shape[:2]
            small_rgb = np.asarray(Image.fromarray(rgb).resize((max(8, round(wd * scale)), max(8, round(h * scale))), Image.Resampling.LANCZOS))
            scale_x = small_rgb.shape[1] / wd
            try:
                small = rec(small_rgb, source=f"{path.name}@{w}")[0]
            except InputError:
                missed[w] += 1
                continue
            rows[w].append(compare(full, small, scale_x))
    print(f"#### {len(paths)} demo faces (jaw {min(full_widths):.0f}-{max(full_widths):.0f} px at full size) shrunk to each jaw width; "
          f"weights {rec.model_info['weights']}; face box: {args.face_box}\n")
    print("| jaw width (px) | crop enlarged | RMS depth difference / depth range | median normal difference (deg) | fine-detail correlation | faces |")
    print("| --- | --- | --- | --- | --- | --- |")
    for w in widths:
        if not rows[w]:
            print(f"| {w} | | | | | 0 (not found: {missed[w]}) |")
            continue
        med = {k: float(np.median([r[k] for r in rows[w]])) for k in rows[w][0]}
        enlarge = 512 / (2 * 1.05 * w)  # the crop side is twice the face box (~1.05 jaw)
        print(f"| {w} | {enlarge:.1f}x | {med['rms_share'] * 100:.1f} % | {med['normal_deg']:.1f} | {med['detail_r']:.2f} | "
              f"{len(rows[w])}{f' ({missed[w]} not found)' if missed[w] else ''} |")


if __name__ == "__main__":
    main()
