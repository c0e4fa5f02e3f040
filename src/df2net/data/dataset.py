"""Dataset folders: writing samples atomically, reading them back, the manifest, a contact sheet.

The folder format is ``docs/conventions.md`` ("Dataset folders"). A sample is written into a
hidden temporary folder beside its final place and renamed onto it when every file is there, so
a sample folder either is complete or does not exist; :func:`sample_complete` is what resuming
checks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from df2net import config

__all__ = [
    "SAMPLE_FILES",
    "sample_name",
    "write_sample",
    "sample_complete",
    "load_sample",
    "write_manifest",
    "read_manifest",
    "contact_sheet",
    "colourise_depth",
]

#: Files every sample folder has; synthetic ones also have ``depth_base.npy`` and
#: ``detail_mask.png``.
SAMPLE_FILES = ("image.png", "mask.png", "depth.npy", "normals.npy", "landmarks.json", "params.json")
SYNTHETIC_FILES = ("depth_base.npy", "detail_mask.png")


def sample_name(index: int) -> str:
    """The folder name of sample ``index``: six digits."""
    return f"{index:06d}"


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_sample(root: str | Path, name: str, sample: Any) -> Path:
    """Write one sample (a :class:`df2net.data.synthetic.Sample`) as ``root/name/``, atomically.

    Returns:
        The sample folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=root))
    try:
        from df2net.io import current_umask

        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
        Image.fromarray(np.asarray(sample.image, np.uint8)).save(tmp / "image.png")
        Image.fromarray(np.asarray(sample.mask, bool).astype(np.uint8) * 255).save(tmp / "mask.png")
        np.save(tmp / "depth.npy", np.asarray(sample.depth, np.float32))
        np.save(tmp / "normals.npy", np.asarray(sample.normals, np.float16))
        if sample.depth_base is not None and sample.detail_mask is not None:
            np.save(tmp / "depth_base.npy", np.asarray(sample.depth_base, np.float32))
            Image.fromarray(np.asarray(sample.detail_mask, bool).astype(np.uint8) * 255).save(tmp / "detail_mask.png")
        if getattr(sample, "marks_mask", None) is not None and getattr(sample, "image_unmarked", None) is not None:
            Image.fromarray(np.asarray(sample.marks_mask, bool).astype(np.uint8) * 255).save(tmp / "marks_mask.png")
            Image.fromarray(np.asarray(sample.image_unmarked, np.uint8)).save(tmp / "image_unmarked.png")
        lm = np.asarray(sample.landmarks, np.float64)
        (tmp / "landmarks.json").write_text(json.dumps({"crop": np.round(lm, 3).tolist()}))
        (tmp / "params.json").write_text(json.dumps(_to_jsonable(sample.params), indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def sample_complete(folder: str | Path, kind: str) -> bool:
    """Whether a sample folder holds every file its kind needs."""
    folder = Path(folder)
    names = SAMPLE_FILES + (SYNTHETIC_FILES if kind == "synthetic" else ())
    return all((folder / n).is_file() for n in names)


def load_sample(folder: str | Path) -> dict[str, Any]:
    """Read a sample folder back: arrays as numpy (mask bool, normals float32), params as dict.

    Keys: ``image``, ``mask``, ``depth``, ``normals``, ``landmarks``, ``params``, and where present
    ``depth_base``, ``detail_mask``, ``marks_mask`` and ``image_unmarked``.
    """
    folder = Path(folder)
    out: dict[str, Any] = {
        "image": np.asarray(Image.open(folder / "image.png").convert("RGB")),
        "mask": np.asarray(Image.open(folder / "mask.png")) > 127,
        "depth": np.load(folder / "depth.npy"),
        "normals": np.load(folder / "normals.npy").astype(np.float32),
        "landmarks": np.asarray(json.loads((folder / "landmarks.json").read_text())["crop"], np.float32),
        "params": json.loads((folder / "params.json").read_text()),
    }
    if (folder / "depth_base.npy").is_file():
        out["depth_base"] = np.load(folder / "depth_base.npy")
    if (folder / "detail_mask.png").is_file():
        out["detail_mask"] = np.asarray(Image.open(folder / "detail_mask.png")) > 127
    if (folder / "marks_mask.png").is_file() and (folder / "image_unmarked.png").is_file():
        out["marks_mask"] = np.asarray(Image.open(folder / "marks_mask.png")) > 127
        out["image_unmarked"] = np.asarray(Image.open(folder / "image_unmarked.png").convert("RGB"))
    return out


def write_manifest(root: str | Path, kind: str, seed: int, samples: list[str], extra: dict[str, Any] | None = None) -> Path:
    """Write ``root/manifest.json`` (atomically) in the conventions' format."""
    from df2net import __version__
    from df2net.io import write_text_atomic

    manifest = {
        "kind": kind,
        "seed": int(seed),
        "count": len(samples),
        "crop_size": config.CROP_SIZE,
        "df2net_version": __version__,
        "samples": list(samples),
    }
    if extra:
        manifest.update(_to_jsonable(extra))
    path = Path(root) / "manifest.json"
    write_text_atomic(path, json.dumps(manifest, indent=1))
    return path


def read_manifest(root: str | Path) -> dict[str, Any]:
    """``root/manifest.json`` as a dict."""
    return json.loads((Path(root) / "manifest.json").read_text())


# ------------------------------------------------------------------------------------------
# Contact sheet
# ------------------------------------------------------------------------------------------


def _turbo(x: np.ndarray) -> np.ndarray:
    """A compact approximation of the Turbo colour map: ``[0, 1] -> (..., 3)`` in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    r = 0.13572138 + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))))
    g = 0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))))
    b = 0.10667330 + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))))
    return np.clip(np.stack([r, g, b], -1), 0.0, 1.0)


def colourise_depth(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Depth inside the mask as a colour map (near = warm), black outside; ``(H, W, 3)`` uint8."""
    out = np.zeros((*depth.shape, 3), np.uint8)
    if mask.any():
        v = depth[mask]
        lo, hi = np.percentile(v, 1), np.percentile(v, 99)
        t = 0.08 + 0.84 * (depth - lo) / max(hi - lo, 1e-6)  # the map's dark ends left out
        out[mask] = np.rint(_turbo(t[mask]) * 255).astype(np.uint8)
    return out


def _face_box(mask: np.ndarray, margin: float = 0.15) -> tuple[int, int, int, int]:
    """A square around the mask (with a margin), for showing the face large."""
    h, w = mask.shape
    if not mask.any():
        return 0, 0, w, h
    rows, cols = np.nonzero(mask)
    cy, cx = 0.5 * (rows.min() + rows.max()), 0.5 * (cols.min() + cols.max())
    half = 0.5 * max(rows.max() - rows.min(), cols.max() - cols.min()) * (1 + 2 * margin)
    half = max(half, 32.0)
    return int(cx - half), int(cy - half), int(cx + half), int(cy + half)


def contact_sheet(root: str | Path, names: list[str], path: str | Path | None = None, tile: int = 160, max_samples: int = 16) -> Path:
    """A grid of up to ``max_samples`` samples, each as image | depth (colour-mapped) | normals.

    Each panel shows the square around the sample's mask, so the face fills the tile.

    Written (atomically) to ``path`` or ``root/contact_sheet.png``.
    """
    from df2net.geometry import normals_to_rgb
    from df2net.io import atomic_path

    root = Path(root)
    chosen = names[:max_samples]
    cols = 2 if len(chosen) > 4 else 1
    rows = max(1, (len(chosen) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * 3 * tile + (cols - 1) * 8, rows * tile), (24, 24, 24))
    for i, name in enumerate(chosen):
        s = load_sample(root / name)
        mask = s["mask"]
        panels = [s["image"], colourise_depth(s["depth"], mask), normals_to_rgb(s["normals"], mask)]
        box = _face_box(mask)
        r, c = divmod(i, cols)
        x = c * (3 * tile + 8)
        for j, p in enumerate(panels):
            im = Image.fromarray(p).crop(box).resize((tile, tile), Image.Resampling.LANCZOS)
            sheet.paste(im, (x + j * tile, r * tile))
    out = Path(path) if path is not None else root / "contact_sheet.png"
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out
