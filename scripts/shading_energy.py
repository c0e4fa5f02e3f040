"""Fine-shading energy of synthetic renders against real photos: is the procedural relief as strong?

    python scripts/shading_energy.py --renders data/synth_relief --photos ../shared/data/df2net_demo \
        --older 1 4 11 18 22 [--limit 60]

For each face crop (the dataset's ``image.png`` and ``mask.png``; a photo's df2net crop and mask)
it measures the RMS of the high-pass (σ 4 px at 512², the relief band) of the log-luminance on
the skin (the face mask eroded 8 px, without eyes, brows and lips), and the share of that energy
above the 90th percentile (how concentrated in lines it is). It prints the medians of the renders
(all, and by light: frontal vs strong side/top), of all photos and of the older faces, so that
``make-data synthetic --fold-gain/--detail-gain`` can be set to match real folds. Renders carry
no albedo-made fine shading when made with ``--plain-skin 1`` (only marks and mottle); photos
carry both, so the photos' number is an upper bound for what relief alone should give.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from df2net.detail_score import feature_mask
from df2net.metrics import high_pass


def energy(image: np.ndarray, mask: np.ndarray, landmarks: np.ndarray) -> tuple[float, float]:
    """RMS of hp(log luminance) on the skin, and the share of the energy in the top 10 % pixels."""
    lin = (image.astype(np.float64) / 255.0) ** 2.2
    lum = lin @ np.array([0.2126, 0.7152, 0.0722])
    skin = ndimage.binary_erosion(mask, iterations=8) & ~feature_mask(landmarks, mask.shape[0])
    if skin.sum() < 500:
        return float("nan"), float("nan")
    hp = high_pass(np.log(lum + 0.02), mask, 4.0)[skin]
    e = hp**2
    top = e >= np.quantile(e, 0.9)
    return float(np.sqrt(e.mean())), float(e[top].sum() / max(e.sum(), 1e-12))


def render_energies(folder: Path, limit: int) -> list[dict]:
    rows = []
    for d in sorted(p for p in folder.iterdir() if (p / "image.png").is_file())[:limit]:
        params = json.loads((d / "params.json").read_text())
        image = np.asarray(Image.open(d / "image_unmarked.png" if (d / "image_unmarked.png").is_file() else d / "image.png").convert("RGB"))
        mask = np.asarray(Image.open(d / "mask.png")) > 127
        lm = np.asarray(json.loads((d / "landmarks.json").read_text())["crop"])
        rms, conc = energy(image, mask, lm)
        sh = np.asarray(params["lighting"]["sh_rgb"]).mean(1)
        side = float(np.degrees(np.arccos(np.clip(sh[2] / max(np.linalg.norm(sh[1:4]), 1e-9), -1, 1))))
        age = (params.get("detail") or {}).get("strength", float("nan"))
        rows.append({"name": d.name, "rms": rms, "concentration": conc, "light_angle_deg": side, "age": age})
    return rows


def photo_energies(photos: list[Path]) -> list[dict]:
    from df2net.face import detect_and_crop
    from df2net.io import load_image

    rows = []
    for path in photos:
        try:
            crops = detect_and_crop(load_image(path).rgb, str(path))
        except Exception as exc:  # a photo without a usable face is reported, not fatal
            print(f"{path}: {exc}")
            continue
        c = crops[0]
        rms, conc = energy(c.image, c.mask, c.landmarks)
        rows.append({"name": path.stem, "rms": rms, "concentration": conc})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renders", type=Path, required=True)
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--older", nargs="*", default=["1", "4", "11", "18", "22"], help="photo stems of older faces")
    ap.add_argument("--limit", type=int, default=60)
    args = ap.parse_args()
    renders = render_energies(args.renders, args.limit)
    photos = photo_energies(sorted(args.photos.glob("*.png")))
    med = lambda rows, key="rms": float(np.nanmedian([r[key] for r in rows])) if rows else float("nan")  # noqa: E731
    side = [r for r in renders if r["light_angle_deg"] >= 55]
    front = [r for r in renders if r["light_angle_deg"] < 55]
    old_r = [r for r in renders if r["age"] >= 0.7]
    older = [r for r in photos if r["name"] in set(args.older)]
    print("| set | faces | hp(log L) RMS, median | energy share of the top 10 % pixels |")
    print("|---|---|---|---|")
    for name, rows in (
        (f"renders {args.renders}", renders),
        ("  lit from the front (< 55°)", front),
        ("  strong side/top light (>= 55°)", side),
        ("  older faces (detail strength >= 0.7)", old_r),
        (f"photos {args.photos}", photos),
        (f"  older faces ({', '.join(args.older)})", older),
    ):
        print(f"| {name} | {len(rows)} | {med(rows):.4f} | {med(rows, 'concentration'):.3f} |")


if __name__ == "__main__":
    main()
