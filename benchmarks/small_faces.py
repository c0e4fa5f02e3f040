"""How the depth of a small face compares with the same face at full size (current weights).

    python benchmarks/small_faces.py [--weights W] [--widths 40,64,80,112,160,224] [--faces 12]
    python benchmarks/small_faces.py --truth data/synth_eval [--faces 40]   # against the truth

Each demo photo (faces about 250-370 px wide) is shrunk so its face's jaw is each width, then
reconstructed as usual: the face is found again and its crop enlarged to 512 px. The small face's
final depth is resampled into the full-size face's crop (the two crops' boxes are known in their
photos), put in the same units, its offset removed (median difference), and compared inside both
masks: RMS depth difference as a share of the full-size face's depth range inside the mask,
median angle between the normals, and the correlation of the fine detail (depth minus a
Gaussian of 2 crop px). Printed as a Markdown table of medians over the faces; nothing is trained.

With ``--truth DIR`` (synthetic renders made by ``df2net make-data synthetic``, whose true depth
is known) each render is reconstructed as it is and shrunk to each jaw width, and every result's
depth is resampled into the render's own frame and scored against the true depth as
``df2net evaluate`` scores it (aligned, mean absolute error in % of the depth range; mean normal
angle on the mask eroded 3 px): what the enlargement costs in accuracy, not only in agreement.
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

    from df2net.cropbox import crop_to_image
    from df2net.geometry import depth_to_normals

    size = full.crop.shape[0]
    img_full = crop_to_image(_pixel_grid(size), full.crop_box, size)
    d_small, mask_s = into_frame(small, scale, img_full, full.crop_box[2] / size)
    both = full.mask & mask_s
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


def _pixel_grid(size: int) -> np.ndarray:
    """The ``(size, size, 2)`` (x, y) coordinates of a square's pixels."""
    vv, uu = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.stack([uu, vv], -1)


def into_frame(result, scale: float, points: np.ndarray, frame_px: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``result``'s depth (a FaceResult of a photo shrunk by ``scale``) resampled at ``points``
    ``(H, W, 2)``, the unshrunk photo's points of a frame whose pixel is ``frame_px`` photo pixels:
    depth in that frame's pixels (any offset) and where it is defined (on ``result``'s crop and mask)."""
    from df2net.cropbox import image_to_crop
    from df2net.data.maps import sample_bilinear

    n = result.crop.shape[0]
    q = image_to_crop((points + 0.5) * scale - 0.5, result.crop_box, n)  # the same points in the shrunk photo's crop
    inside = (q >= 0).all(-1) & (q <= n - 1).all(-1)
    mask = (sample_bilinear(result.mask.astype(np.float32), q[..., 0], q[..., 1]) > 0.99) & inside
    # One of the result's crop pixels is result.side / scale photo pixels, over n of them.
    unit = (result.crop_box[2] / scale) / n / frame_px
    return sample_bilinear(result.depth, q[..., 0], q[..., 1]) * unit, mask


def truth_errors(depth: np.ndarray, defined: np.ndarray, sample: dict) -> dict[str, float]:
    """Depth error (% of range) and mean normal angle (deg) of ``depth`` against a render's truth."""
    from scipy.ndimage import binary_erosion

    from df2net.geometry import depth_to_normals
    from df2net.metrics import align_depth, depth_error, mean_normal_angle

    true = sample["depth"].astype(np.float64)
    mask = sample["mask"] & (true != 0) & defined
    aligned = align_depth(np.where(defined, depth, 0.0), true, mask)
    normals = depth_to_normals(aligned.astype(np.float32), mask)
    true_n = sample["normals"] if "normals" in sample else depth_to_normals(true.astype(np.float32), mask)
    return {"depth_pct": depth_error(depth, true, mask).percent_of_range,
            "normal_deg": mean_normal_angle(normals, true_n, binary_erosion(mask, iterations=3)),
            "coverage": float(mask.sum() / max((sample["mask"] & (true != 0)).sum(), 1))}


def shrink(rgb: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """``rgb`` shrunk by about ``scale`` (Lanczos) and the exact horizontal scale it got."""
    h, wd = rgb.shape[:2]
    small = np.asarray(Image.fromarray(rgb).resize((max(8, round(wd * scale)), max(8, round(h * scale))), Image.Resampling.LANCZOS))
    return small, small.shape[1] / wd


def main_truth(rec, folder: Path, widths: list[int], faces: int) -> None:
    """The ``--truth`` table: accuracy against the renders' true depth at each jaw width."""
    from df2net.data.dataset import load_sample
    from df2net.errors import InputError

    samples = sorted(p for p in folder.iterdir() if (p / "depth.npy").is_file())[:faces]
    rows: dict[str, list[dict[str, float]]] = {"full": [], **{str(w): [] for w in widths}}
    missed = {str(w): 0 for w in widths}
    jaws = []
    for path in samples:
        s = load_sample(path)
        rgb = s["image"]
        try:
            full = rec(rgb, source=path.name)[0]
        except InputError:
            continue
        size = rgb.shape[0]
        grid = _pixel_grid(size)  # a render's own frame: its crop is the whole image
        base = truth_errors(*into_frame(full, 1.0, grid), s)
        jaw = float(np.linalg.norm(full.landmarks_image[16] - full.landmarks_image[0]))
        jaws.append(jaw)
        found = {}
        for w in widths:
            small_rgb, scale = shrink(rgb, w / jaw)
            try:
                small = rec(small_rgb, source=f"{path.name}@{w}")[0]
            except InputError:
                missed[str(w)] += 1
                continue
            found[str(w)] = truth_errors(*into_frame(small, scale, grid), s)
        rows["full"].append(base)
        for k, v in found.items():
            rows[k].append({**v, "d_depth": v["depth_pct"] - base["depth_pct"], "d_normal": v["normal_deg"] - base["normal_deg"]})
    print(f"#### {len(rows['full'])} renders of {folder} (jaw {min(jaws):.0f}-{max(jaws):.0f} px as rendered) shrunk to each jaw width; "
          f"weights {rec.model_info['weights']}; against the true depth\n")
    print("| jaw width (px) | depth error, % of range (mean) | normal error, deg (mean) | change against the same render as rendered, depth / normals (median) | faces |")
    print("| --- | --- | --- | --- | --- |")
    for key, found in rows.items():
        if not found:
            print(f"| {key} | | | | 0 (not found: {missed.get(key, 0)}) |")
            continue
        mean = {k: float(np.mean([r[k] for r in found])) for k in ("depth_pct", "normal_deg")}
        change = "" if key == "full" else f"{np.median([r['d_depth'] for r in found]):+.2f} / {np.median([r['d_normal'] for r in found]):+.2f}"
        label = f"as rendered ({np.median(jaws):.0f} median)" if key == "full" else key
        lost = f" ({missed[key]} not found)" if missed.get(key) else ""
        print(f"| {label} | {mean['depth_pct']:.2f} | {mean['normal_deg']:.2f} | {change} | {len(found)}{lost} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--demo-dir", type=Path, default=DEMO_DIR)
    ap.add_argument("--widths", default="40,64,80,112,160,224")
    ap.add_argument("--faces", type=int, default=12)
    ap.add_argument("--truth", type=Path, help="synthetic renders (make-data synthetic): score against their true depth")
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
    if args.truth:
        main_truth(rec, args.truth, widths, args.faces)
        return
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
            small_rgb, scale_x = shrink(rgb, w / jaw)
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
