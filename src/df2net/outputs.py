"""Writing every output file of a reconstructed face into its folder, all or nothing."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from df2net import __version__
from df2net.io import current_umask, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from df2net.geometry import Mesh


class FaceResult(Protocol):
    """What the writers read of a reconstructed face; :class:`df2net.reconstruct.FaceResult` is one.

    Named here, not imported, so this module never imports :mod:`df2net.reconstruct` (which
    imports this one for ``FaceResult.save``). Arrays are in the crop frame.
    """

    source: str
    index: int
    crop: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) bool
    landmarks: np.ndarray  # (68, 2) crop frame
    landmarks_image: np.ndarray  # (68, 2) image frame
    box: np.ndarray  # (4,)
    crop_box: tuple[float, ...]  # x0, y0, side, angle (deg)
    timings: dict[str, float]
    model_info: dict[str, str]
    detection: dict[str, object]

    @property
    def depth(self) -> np.ndarray: ...  # (S, S) float32, crop pixels

    @property
    def normals(self) -> np.ndarray: ...  # (S, S, 3)

    @property
    def masked_crop(self) -> np.ndarray: ...  # (S, S, 3) uint8

    @property
    def surface(self) -> Mesh: ...


#: Output formats a user can pick with ``--formats``, and the files each one writes.
FORMATS: dict[str, str] = {
    "depth": "depth.npy (float32, crop pixels)",
    "depth16": "depth.png (16-bit) + depth.json (its scale) + depth_color.png",
    "normals": "normals.png",
    "crop": "crop.png (masked crop) and mask.png",
    "ply": "points.ply (coloured point cloud)",
    "obj": "mesh.obj + mesh.mtl + mesh.png (texture)",
    "glb": "mesh.glb (binary glTF, texture embedded)",
    "preview": "preview.png (shaded mesh from the front and a side, and the crop)",
    "metadata": "metadata.json (detector and score, boxes, crop rotation, landmarks, timings, versions)",
}
ALL_FORMATS: frozenset[str] = frozenset(FORMATS)


def parse_formats(text: str | None) -> set[str]:
    """Parse a comma-separated ``--formats`` value; ``None`` or ``"all"`` means every format."""
    if text is None or text.strip() in ("", "all"):
        return set(ALL_FORMATS)
    chosen = {t.strip() for t in text.split(",") if t.strip()}
    unknown = chosen - ALL_FORMATS
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; choose from {sorted(ALL_FORMATS)}")
    return chosen


def face_folder(out_dir: Path, stem: str, index: int) -> Path:
    """Folder of one face: ``OUT/<photo stem>/face<index>``."""
    return out_dir / stem / f"face{index}"


def write_face(face: FaceResult, folder: Path, formats: set[str] | None = None) -> list[Path]:
    """Write ``face``'s files into ``folder``.

    Files go into a hidden temporary folder beside it that is renamed onto ``folder`` once all
    are written, so an interrupted run never leaves a half-written face behind.
    """
    formats = set(ALL_FORMATS) if formats is None else set(formats)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        timings: dict[str, float] = {}
        writing = _Writing(face)
        for name, writer in _WRITERS.items():  # in the order they are listed there
            if name in formats:
                writer(writing, tmp, timings)
        if "metadata" in formats:
            _write_metadata(face, tmp, timings)
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it owner-only
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p for p in folder.iterdir() if p.is_file())


class _Writing:
    """A face being written: the face's attributes, and what several writers use, made once."""

    def __init__(self, face: FaceResult) -> None:
        self._face = face
        self._texture_png: bytes | None = None

    def __getattr__(self, name: str):
        return getattr(self._face, name)

    @property
    def texture_png(self) -> bytes:
        """The crop as PNG: ``mesh.png`` and the texture inside ``mesh.glb``."""
        if self._texture_png is None:
            from df2net.export.common import check_rgb
            from df2net.export.png import png_bytes

            self._texture_png = png_bytes(check_rgb("texture", self._face.crop))
        return self._texture_png


def _timed(fn: Callable[[_Writing, Path], None], name: str) -> Callable[[_Writing, Path, dict], None]:
    import time

    def run(face: _Writing, folder: Path, timings: dict[str, float]) -> None:
        t0 = time.perf_counter()
        fn(face, folder)
        timings[f"write_{name}_s"] = round(time.perf_counter() - t0, 4)

    return run


def _write_depth(face: FaceResult, folder: Path) -> None:
    from df2net.export import write_depth_npy

    write_depth_npy(folder / "depth.npy", face.depth)


def _write_depth16(face: FaceResult, folder: Path) -> None:
    from df2net.export import write_depth_colormap_png, write_depth_png16

    write_depth_png16(folder / "depth.png", face.depth, face.mask)
    write_depth_colormap_png(folder / "depth_color.png", face.depth, face.mask)


def _write_normals(face: FaceResult, folder: Path) -> None:
    from df2net.export import write_normals_png

    write_normals_png(folder / "normals.png", face.normals, face.mask)


def _write_crop(face: FaceResult, folder: Path) -> None:
    from df2net.export import write_mask_png, write_rgb_png

    write_rgb_png(folder / "crop.png", face.masked_crop)
    write_mask_png(folder / "mask.png", face.mask)


def _write_ply(face: FaceResult, folder: Path) -> None:
    from df2net.export import write_ply
    from df2net.geometry import depth_to_points

    points, colors = depth_to_points(face.depth, face.mask, face.crop)
    write_ply(folder / "points.ply", points, colors)


def _write_obj(face: _Writing, folder: Path) -> None:
    from df2net.export import write_obj

    write_obj(folder / "mesh.obj", face.surface, face.crop, texture_png=face.texture_png)


def _write_glb(face: _Writing, folder: Path) -> None:
    from df2net.export import write_glb

    write_glb(folder / "mesh.glb", face.surface, face.crop, texture_png=face.texture_png)


def _write_preview(face: FaceResult, folder: Path) -> None:
    from df2net.export import write_rgb_png
    from df2net.preview import make_preview

    write_rgb_png(folder / "preview.png", make_preview(face.masked_crop, face.surface))


def _write_metadata(face: FaceResult, folder: Path, write_timings: dict[str, float]) -> None:
    """metadata.json. The crop is turned by ``crop_rotation_deg`` in the photo (df2net.cropbox);
    ``crop_to_image`` is the 2x3 matrix taking crop pixel ``(u, v, 1)`` to photo pixels."""
    import dlib

    from df2net.cropbox import crop_affine
    from df2net.versions import torch_version

    meta = {
        "source": face.source,
        "face_index": face.index,
        "detection": face.detection,  # detector name, deciding score, score of each stage, angle
        "box_xyxy": [round(float(v), 2) for v in face.box],
        "crop_box_xy_side": [round(float(v), 2) for v in face.crop_box[:3]],
        "crop_rotation_deg": round(float(face.crop_box[3]) if len(face.crop_box) > 3 else 0.0, 3),
        "crop_to_image": np.round(crop_affine(face.crop_box, int(face.crop.shape[0])), 6).tolist(),
        "crop_size": int(face.crop.shape[0]),
        "landmarks_image": np.round(face.landmarks_image, 2).tolist(),
        "landmarks_crop": np.round(face.landmarks, 2).tolist(),
        "depth_units": "crop pixels, larger is nearer, 0 outside the mask",
        "depth_range": [0.0, round(float(face.depth[face.mask].max()), 3) if face.mask.any() else 0.0],
        "mask_pixels": int(face.mask.sum()),
        "timings_s": {**{k: round(v, 4) for k, v in face.timings.items()}, **write_timings},
        "model": face.model_info,
        "versions": {
            "df2net": __version__,
            "torch": torch_version(),
            "numpy": np.__version__,
            "dlib": getattr(dlib, "__version__", "unknown"),
            "python": platform.python_version(),
        },
    }
    write_text_atomic(folder / "metadata.json", json.dumps(meta, indent=2))


_WRITERS = {
    "depth": _timed(_write_depth, "depth"),
    "depth16": _timed(_write_depth16, "depth16"),
    "normals": _timed(_write_normals, "normals"),
    "crop": _timed(_write_crop, "crop"),
    "ply": _timed(_write_ply, "ply"),
    "obj": _timed(_write_obj, "obj"),
    "glb": _timed(_write_glb, "glb"),
    "preview": _timed(_write_preview, "preview"),
}
