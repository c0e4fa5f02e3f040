"""The demo's work, in plain Python: a photo file in, its faces reconstructed and shown, its files
zipped (:class:`DemoWork`); one model, loaded once, one reconstruction at a time.

Uploads and results live in one temporary folder, a request folder per photo, swept as results
expire (:meth:`DemoWork.sweep`, :func:`forget`).
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from df2net import config
from df2net.cropbox import box_corners
from df2net.detection.skipped import SkippedFace
from df2net.errors import InputError
from df2net.reconstruct import STAGES, FaceResult, Reconstructor
from df2net.web.pictures import depth_range, depth_with_colorbar, draw_face_boxes, skipped_label

#: Largest upload the server accepts (bytes); larger ones are refused before they are stored.
MAX_UPLOAD_BYTES: int = 20 * 1024 * 1024
#: Largest photo (width x height) the demo decodes; larger ones are refused with a message.
MAX_PIXELS: int = config.MAX_IMAGE_PIXELS
#: How long a photo's results (files and session state) are kept after it was reconstructed.
KEEP_RESULTS_S: int = 3600


@dataclass
class FaceViews:
    """What the page shows of one face at one stage."""

    glb: Path  # textured mesh
    depth: np.ndarray  # depth map with colour bar, RGB
    normals: np.ndarray  # normal map, RGB
    preview: np.ndarray  # shaded preview, RGB


@dataclass
class PhotoResult:
    """One reconstructed photo: its faces, the faces skipped, its files and the time of each step."""

    name: str  # the photo's file name
    stem: str  # safe name of its output folder and zip
    folder: Path  # this request's folder (deleted when the result expires)
    faces: list[FaceResult]
    boxed: np.ndarray  # the photo with the faces boxed and numbered, the skipped ones lettered
    zip_path: Path
    timings: dict[str, float]
    ranges: list[tuple[float, float]]  # colour scale of each face's depth
    views: dict[tuple[int, str], FaceViews] = field(default_factory=dict)
    skipped: list[SkippedFace] = field(default_factory=list)  # faces found but not reconstructed

    def timings_markdown(self) -> str:
        """The step times as a small Markdown table for the page."""
        labels = {
            "read_s": "reading the photo",
            "detect_s": "face detection, landmarks, crop",
            "network_s": "network (D, F, Fr)",
            "views_s": "mesh, maps and preview shown",
            "outputs_s": "all output files and zip",
        }
        rows = [f"| {labels[k]} | {v:.2f} s |" for k, v in self.timings.items() if k in labels]
        total = sum(v for k, v in self.timings.items() if k in labels)
        faces = f"{len(self.faces)} face{'s' if len(self.faces) != 1 else ''}"
        return "\n".join(
            [f"**{self.name}**: {faces}, {total:.2f} s", "", "| step | time |", "|---|---:|", *rows]
        )

    def skipped_markdown(self) -> str:
        """The faces found but not reconstructed, by their letter on the picture, each with why;
        empty when there are none."""
        if not self.skipped:
            return ""
        count = f"{len(self.skipped)} face{'s' if len(self.skipped) != 1 else ''}"
        lines = [f"**Not reconstructed:** {count} found, boxed in grey and lettered on the photo:", ""]
        lines += [f"- **{skipped_label(i)}**: {face.why}" for i, face in enumerate(self.skipped)]
        return "\n".join(lines)


class DemoWork:
    """The demo's work: photo in, :class:`PhotoResult` out; one model, loaded once.

    Args:
        reconstructor: the loaded detector and network, shared by every request.
        work_dir: the temporary folder for this server's request folders (created).
        max_bytes, max_pixels: the largest upload and the largest photo accepted.
        keep_s: request folders older than this are deleted when the next photo comes in.
    """

    def __init__(
        self,
        reconstructor: Reconstructor,
        work_dir: str | Path,
        *,
        max_bytes: int = MAX_UPLOAD_BYTES,
        max_pixels: int = MAX_PIXELS,
        keep_s: float = KEEP_RESULTS_S,
    ) -> None:
        self.reconstructor = reconstructor
        self.work_dir = Path(work_dir)
        self.requests_dir = self.work_dir / "requests"
        self.requests_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.keep_s = keep_s
        self._model_lock = threading.Lock()  # one reconstruction at a time, whoever calls

    def reconstruct(self, photo: str | Path, stage: str = "finer", progress: Any = None) -> PhotoResult:
        """Reconstruct every face of the photo file ``photo``; build the views of face 0.

        Raises:
            InputError: the one-line reason the photo cannot be used (too big, not an image,
                truncated, no face ...).
        """
        from df2net.face import detect_and_crop
        from df2net.io import load_image

        step = progress if progress is not None else (lambda *a, **k: None)
        photo = Path(photo)
        name = photo.name
        self.sweep()
        timings: dict[str, float] = {}

        step(0.0, desc="Reading the photo")
        t0 = time.perf_counter()
        self._check_size(photo, name)
        loaded = load_image(photo, limit_pixels=self.max_pixels, source=name)
        timings["read_s"] = time.perf_counter() - t0

        with self._model_lock:
            step(0.1, desc="Finding faces")
            t0 = time.perf_counter()
            rec = self.reconstructor
            crops = detect_and_crop(
                loaded.rgb, name, detector=rec.detector, crop_cfg=rec.crop_config, mask_cfg=rec.mask_config
            )
            timings["detect_s"] = time.perf_counter() - t0
            step(0.25, desc=f"Running the network on {len(crops)} face(s)")
            t0 = time.perf_counter()
            faces = rec.reconstruct_crops(crops, name, {"load_s": timings["read_s"], "detect_crop_s": timings["detect_s"]})
            timings["network_s"] = time.perf_counter() - t0

        folder = self.requests_dir / f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
        folder.mkdir()
        stem = _safe_stem(name)
        result = PhotoResult(
            name=name,
            stem=stem,
            folder=folder,
            faces=faces,
            boxed=draw_face_boxes(
                loaded.rgb,
                [box_corners(f.box, f.crop_box[3]) for f in faces],
                skipped=[s.corners() for s in faces.skipped],
            ),
            zip_path=folder / f"{stem}_df2net.zip",
            timings=timings,
            ranges=[depth_range(f) for f in faces],
            skipped=list(faces.skipped),
        )
        step(0.6, desc="Building the mesh and maps")
        t0 = time.perf_counter()
        self.views(result, 0, stage)
        timings["views_s"] = time.perf_counter() - t0
        step(0.75, desc="Writing every output file")
        t0 = time.perf_counter()
        write_zip(result)
        timings["outputs_s"] = time.perf_counter() - t0
        step(1.0, desc="Done")
        return result

    def views(self, result: PhotoResult, index: int, stage: str) -> FaceViews:
        """Mesh, depth, normals and preview of face ``index`` after ``stage`` (built once)."""
        from df2net.export import write_glb
        from df2net.geometry import depth_to_normals, normals_to_rgb
        from df2net.preview import make_preview

        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose from {list(STAGES)}")
        if not 0 <= index < len(result.faces):
            raise ValueError(f"no face {index} (the photo has {len(result.faces)})")
        key = (index, stage)
        cached = result.views.get(key)
        if cached is not None and cached.glb.exists():
            return cached
        face = result.faces[index]
        depth = face.stages[stage]
        final = stage == "finer"  # the final surface and normals are cached on the face
        mesh = face.surface if final else face.mesh(stage)
        normals = face.normals if final else depth_to_normals(depth, face.mask)
        result.folder.mkdir(parents=True, exist_ok=True)
        glb = result.folder / f"{result.stem}_face{index}_{stage}.glb"
        write_glb(glb, mesh, face.crop)
        views = FaceViews(
            glb=glb,
            depth=depth_with_colorbar(depth, face.mask, result.ranges[index]),
            normals=normals_to_rgb(normals, face.mask),
            preview=make_preview(face.masked_crop, mesh),
        )
        result.views[key] = views
        return views

    def sweep(self) -> None:
        """Delete request folders older than ``keep_s``."""
        cutoff = time.time() - self.keep_s
        for folder in self.requests_dir.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:
                pass

    def _check_size(self, photo: Path, name: str) -> None:
        """Refuse files over ``max_bytes`` (pictures over ``max_pixels``: :func:`df2net.io.load_image`)."""
        try:
            size = photo.stat().st_size
        except OSError:
            return  # load_image says what is wrong with the file
        if size > self.max_bytes:
            raise InputError(name, f"file too large ({size / 2**20:.1f} MB; the limit is {self.max_bytes / 2**20:g} MB)")


def write_zip(result: PhotoResult) -> Path:
    """Every output file of every face (``FaceResult.save``) in one zip: ``<stem>/face<i>/...``."""
    from df2net.outputs import face_folder

    root = result.folder / "outputs"
    files: list[Path] = []
    for face in result.faces:
        files += face.save(face_folder(root, result.stem, face.index))
    tmp = result.zip_path.with_name(f".{result.zip_path.name}.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in files:
            archive.write(path, path.relative_to(root).as_posix())
    tmp.replace(result.zip_path)
    shutil.rmtree(root, ignore_errors=True)  # the zip holds them
    return result.zip_path


def forget(result: PhotoResult | None) -> None:
    """Delete a result's files (its request folder); called when its session state expires."""
    if result is not None:
        shutil.rmtree(result.folder, ignore_errors=True)


def _safe_stem(name: str) -> str:
    """A file-name-safe stem of an uploaded file's name."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).stem).strip("._")
    return stem[:64] or "photo"
