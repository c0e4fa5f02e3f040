"""The browser demo: a Gradio page over one :class:`~df2net.reconstruct.Reconstructor`.

A photo (uploaded, dropped, pasted, or one of the bundled samples) is reconstructed once; the
page shows it with every face boxed and numbered, and for the chosen face and network stage
(D, D+F or D+F+Fr) the textured mesh, the depth map with its colour bar, the normal map and the
shaded preview, plus one zip of every output file of every face and the time each step took.
The same reconstruction is Gradio's HTTP API endpoint ``/reconstruct``.

Private and offline: no analytics, no share link, no run history, system fonts only (the page
loads nothing from outside the server), and uploads and results live in one temporary folder
that is swept as results expire and deleted when the server stops.

:class:`WebDemo` does the work (``reconstruct`` and ``views`` are plain Python; its
``handle_*`` methods wrap them for Gradio); :func:`build_demo` lays out the page over it and
:func:`launch` serves it.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before Gradio is imported: it reads these once.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_SSR_MODE", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

import df2net  # noqa: E402
from df2net import config  # noqa: E402
from df2net.cropbox import box_corners  # noqa: E402
from df2net.errors import InputError  # noqa: E402
from df2net.reconstruct import STAGES, FaceResult, Reconstructor  # noqa: E402

log = logging.getLogger(__name__)

#: Largest upload the server accepts (bytes); larger ones are refused before they are stored.
MAX_UPLOAD_BYTES: int = 20 * 1024 * 1024
#: Largest photo (width x height) the demo decodes; larger ones are refused with a message.
MAX_PIXELS: int = config.MAX_IMAGE_PIXELS
#: How long a photo's results (files and session state) are kept after it was reconstructed.
KEEP_RESULTS_S: int = 3600
#: Photos waiting in the queue beyond the one being reconstructed; more are turned away.
MAX_QUEUE: int = 16

#: The stage control: (label, ``FaceResult.stages`` key).
STAGE_CHOICES: list[tuple[str, str]] = [
    ("D (dense)", "dense"),
    ("D+F (fine)", "fine"),
    ("D+F+Fr (finer)", "finer"),
]

#: The bundled sample photos, found through the installed package.
SAMPLES_DIR: Path = Path(df2net.__file__).resolve().parent / "samples"

_BOX_COLOURS = [(0, 229, 255), (255, 64, 129), (118, 255, 3), (255, 196, 0), (213, 0, 249)]


def sample_photos() -> list[Path]:
    """The sample photos shipped in the package, sorted by name."""
    return sorted(p for p in SAMPLES_DIR.glob("*.png") if p.is_file())


# --------------------------------------------------------------------------------------------
# Pictures for the page (pure functions of arrays)
# --------------------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_face_boxes(rgb: np.ndarray, boxes: list[np.ndarray], max_side: int = 1280) -> np.ndarray:
    """The photo with each face box drawn and numbered (0, 1, ... as the ``face<i>`` folders).

    Args:
        rgb: ``(H, W, 3)`` uint8 photo.
        boxes: ``(4,)`` boxes ``x0, y0, x1, y1``, or ``(4, 2)`` corners of a turned box (a face
            whose crop is turned so its eyes are level), in the photo's pixels.
        max_side: the picture is shrunk to fit this side first (it is only for looking at).

    Returns:
        ``(h, w, 3)`` uint8 RGB.
    """
    image = Image.fromarray(np.asarray(rgb, np.uint8))
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 320))
    font = _font(max(14, round(max(image.size) / 28)))
    for i, box in enumerate(boxes):
        corners = np.asarray(box, np.float64).reshape(-1, 2)
        if len(corners) == 2:  # x0, y0, x1, y1
            (a0, b0), (a1, b1) = corners
            corners = np.array([(a0, b0), (a1, b0), (a1, b1), (a0, b1)])
        corners = corners * scale
        colour = _BOX_COLOURS[i % len(_BOX_COLOURS)]
        draw.line([tuple(p) for p in (*corners, corners[0])], fill=colour, width=line, joint="curve")
        x0, y0 = corners[int(np.argmin(corners.sum(axis=1)))]  # the label goes by the top-left corner
        text = str(i)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, line)
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        lx, ly = x0, y0 - h if y0 - h >= 0 else y0  # above the box, or inside it at the top
        draw.rectangle((lx, ly, lx + w, ly + h), fill=colour)
        draw.text((lx + pad - left, ly + pad - top), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def depth_range(face: FaceResult, percentiles: tuple[float, float] = (0.5, 99.9)) -> tuple[float, float]:
    """One colour scale for all stages of a face, so switching stages shows true differences."""
    if not face.mask.any():
        return 0.0, 1.0
    lows, highs = zip(*(np.percentile(face.stages[s][face.mask], percentiles) for s in STAGES))
    lo, hi = float(min(lows)), float(max(highs))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def depth_with_colorbar(
    depth: np.ndarray, mask: np.ndarray, value_range: tuple[float, float], bar_width: int = 110
) -> np.ndarray:
    """The colour-mapped depth with a labelled colour bar (crop pixels, near at the top) beside it.

    Returns:
        ``(H, W + bar_width, 3)`` uint8 RGB.
    """
    from df2net.export import depth_to_colormap

    lo, hi = value_range
    height = depth.shape[0]
    picture = depth_to_colormap(depth, mask, value_range=value_range)
    panel = Image.new("RGB", (bar_width, height), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    font = _font(max(11, height // 36))
    top, bottom = round(height * 0.12), round(height * 0.9)
    x0, x1 = 14, 14 + max(12, bar_width // 6)
    ramp = np.linspace(hi, lo, bottom - top)[:, None].repeat(x1 - x0, axis=1)
    panel.paste(Image.fromarray(depth_to_colormap(ramp, np.ones(ramp.shape, bool), value_range=value_range)), (x0, top))
    draw.rectangle((x0 - 1, top - 1, x1, bottom), outline=(60, 60, 60))
    draw.text((x0 - 6, top - round(height * 0.1)), "depth (px)\nnear", fill=(30, 30, 30), font=font)
    draw.text((x0 - 6, bottom + 4), "far", fill=(30, 30, 30), font=font)
    digits = 0 if hi - lo >= 20 else 1 if hi - lo >= 2 else 2
    for k in range(5):
        value = lo + (hi - lo) * k / 4
        y = bottom - 1 - (bottom - top - 1) * k / 4
        draw.line((x1, y, x1 + 5, y), fill=(60, 60, 60), width=1)
        draw.text((x1 + 8, y), f"{value:.{digits}f}", fill=(30, 30, 30), font=font, anchor="lm")
    return np.concatenate([picture, np.asarray(panel)], axis=1)


# --------------------------------------------------------------------------------------------
# The work behind the page
# --------------------------------------------------------------------------------------------


@dataclass
class FaceViews:
    """What the page shows of one face at one stage."""

    glb: Path  # textured mesh
    depth: np.ndarray  # depth map with colour bar, RGB
    normals: np.ndarray  # normal map, RGB
    preview: np.ndarray  # shaded preview, RGB


@dataclass
class PhotoResult:
    """One reconstructed photo: its faces, its files and how long each step took."""

    name: str  # the photo's file name
    stem: str  # safe name of its output folder and zip
    folder: Path  # this request's folder (deleted when the result expires)
    faces: list[FaceResult]
    boxed: np.ndarray  # the photo with the faces boxed and numbered
    zip_path: Path
    timings: dict[str, float]
    ranges: list[tuple[float, float]]  # colour scale of each face's depth
    views: dict[tuple[int, str], FaceViews] = field(default_factory=dict)

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


class WebDemo:
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

    # -- the plain API ------------------------------------------------------------------------

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
        loaded = load_image(photo, max_pixels=self.max_pixels, source=name)
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
            boxed=draw_face_boxes(loaded.rgb, [box_corners(f.box, f.crop_box[3]) for f in faces]),
            zip_path=folder / f"{stem}_df2net.zip",
            timings=timings,
            ranges=[depth_range(f) for f in faces],
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
        """Refuse files over ``max_bytes`` and pictures over ``max_pixels`` before decoding."""
        try:
            size = photo.stat().st_size
        except OSError:
            return  # load_image says what is wrong with the file
        if size > self.max_bytes:
            raise InputError(name, f"file too large ({size / 2**20:.1f} MB; the limit is {self.max_bytes / 2**20:g} MB)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(photo) as im:  # reads the header only
                    width, height = im.size
        except Image.DecompressionBombError:
            raise InputError(name, f"image too large (the limit is {self.max_pixels / 1e6:g} megapixels)") from None
        except Exception:
            return  # not an image, or unreadable: load_image gives the reason
        if width * height > self.max_pixels:
            raise InputError(
                name,
                f"image too large ({width} x {height} = {width * height / 1e6:.1f} megapixels; "
                f"the limit is {self.max_pixels / 1e6:g})",
            )

    # -- the Gradio handlers --------------------------------------------------------------------

    def handle_reconstruct(
        self,
        photo: str | None,
        stage: str = "finer",
        previous: PhotoResult | None = None,
        progress=gr.Progress(),  # noqa: B008 - Gradio's way of asking for a progress bar
    ) -> tuple:
        """Event handler of the Reconstruct button and the ``/reconstruct`` API endpoint.

        Returns: the boxed photo, the session state (a :class:`PhotoResult`), then face 0's
        GLB path, depth, normal and preview images, the zip path and the timings as Markdown. A bad photo raises ``gr.Error`` with the one-line reason.
        ``previous`` is the session's earlier result, whose files are deleted on success.
        """
        if not photo:
            raise gr.Error("No photo: upload, drop or paste one, or click a sample photo.", print_exception=False)
        stage = stage if stage in STAGES else "finer"
        try:
            result = self.reconstruct(photo, stage, progress)
        except InputError as exc:
            log.info("refused: %s", exc)
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # the server must stay up; the user gets one line
            log.exception("reconstruction of %s failed", photo)
            raise gr.Error(_one_line(f"internal error: {type(exc).__name__}: {exc}"), print_exception=False) from None
        if previous is not None and previous is not result:
            _forget(previous)
        views = result.views[(0, stage)]
        return (
            result.boxed,
            result,
            str(views.glb),
            views.depth,
            views.normals,
            views.preview,
            str(result.zip_path),
            result.timings_markdown(),
        )

    @staticmethod
    def face_selector(result: PhotoResult | None) -> gr.Radio:
        """The face selector for a new result: one choice per face, face 0 chosen."""
        count = len(result.faces) if result is not None else 0
        return gr.Radio(choices=[(f"face {i}", i) for i in range(count)], value=0 if count else None)

    def handle_show(self, result: PhotoResult | None, index: int | None, stage: str) -> tuple:
        """Event handler of the face selector and the stage control: the views of that choice."""
        if result is None:
            raise gr.Error("Reconstruct a photo first.", print_exception=False)
        try:
            views = self.views(result, int(index or 0), stage)
        except Exception as exc:
            log.exception("views of face %s, stage %s failed", index, stage)
            raise gr.Error(_one_line(f"internal error: {type(exc).__name__}: {exc}"), print_exception=False) from None
        return str(views.glb), views.depth, views.normals, views.preview


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


def _safe_stem(name: str) -> str:
    """A file-name-safe stem of an uploaded file's name."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).stem).strip("._")
    return stem[:64] or "photo"


def _one_line(text: str) -> str:
    return text.splitlines()[0] if text else text


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------


class PhotoInput(gr.Image):
    """``gr.Image`` that hands the handler the uploaded file itself, undecoded.

    Gradio's own image preprocessing opens the upload with Pillow and fails with a generic
    error on a file that is not an image; df2net's loader gives the one-line reason instead.
    """

    is_template = True  # drawn by the frontend's Image component

    def preprocess(self, payload: Any) -> str | None:
        if payload is None:
            return None
        url = getattr(payload, "url", None)
        if url and url.startswith("data:"):  # a pasted image sent inline
            header, _, data = url.partition(",")
            raw = base64.b64decode(data) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(data)
            cache = Path(self.GRADIO_CACHE)
            cache.mkdir(parents=True, exist_ok=True)  # Gradio makes it lazily; it may not exist yet
            folder = Path(tempfile.mkdtemp(dir=cache))
            path = folder / "pasted_image"
            path.write_bytes(raw)
            return str(path)
        if payload.path is None:
            raise gr.Error("The upload did not arrive; try again.", print_exception=False)
        return str(payload.path)


THEME_CSS = "#df2net-timings table { font-size: 0.9em; }"


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts, so the page fetches no font files."""
    return gr.themes.Default(
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def build_demo(demo: WebDemo) -> gr.Blocks:
    """Lay out the page over ``demo`` and wire its events (queue set up; not launched)."""
    samples = [str(p) for p in sample_photos()]
    with gr.Blocks(
        title="df2net: one photo, a detailed 3D face",
        analytics_enabled=False,
        delete_cache=(600, KEEP_RESULTS_S),
    ) as blocks:
        gr.Markdown(
            "## df2net: one photo of a face in, a detailed 3D face out\n"
            "Upload, drop or paste a photo (or click a sample), then **Reconstruct**. Everything "
            "runs on this machine; photos and results sit in a temporary folder that is deleted "
            f"after {KEEP_RESULTS_S // 60} minutes and when the server stops. "
            f"Limits: {MAX_UPLOAD_BYTES // 2**20} MB, {demo.max_pixels / 1e6:g} megapixels."
        )
        state = gr.State(None, time_to_live=KEEP_RESULTS_S, delete_callback=_forget)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                photo = PhotoInput(
                    label="Photo",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    height=300,
                    elem_id="df2net-photo",
                )
                run = gr.Button("Reconstruct", variant="primary", elem_id="df2net-run")
                examples = gr.Examples(samples, inputs=[photo], label="Sample photos", elem_id="df2net-samples")
                boxed = gr.Image(label="Faces found", format="png", interactive=False, elem_id="df2net-boxed")
                zip_file = gr.File(label="All outputs of the photo (zip)", interactive=False, elem_id="df2net-zip")
                timings = gr.Markdown(elem_id="df2net-timings")
            with gr.Column(scale=3, min_width=400):
                with gr.Row():
                    face = gr.Radio(choices=[], label="Face", elem_id="df2net-face")
                    stage = gr.Radio(
                        choices=STAGE_CHOICES, value="finer", label="Result after stage", elem_id="df2net-stage"
                    )
                mesh = gr.Model3D(
                    label="Textured mesh (drag to turn, scroll to zoom)",
                    clear_color=(0.93, 0.93, 0.93, 1.0),
                    height=440,
                    elem_id="df2net-mesh",
                )
                with gr.Row(equal_height=True):
                    depth = gr.Image(
                        label="Depth", format="png", interactive=False, height=300, elem_id="df2net-depth"
                    )
                    normals = gr.Image(
                        label="Normals", format="png", interactive=False, height=300, elem_id="df2net-normals"
                    )
                preview = gr.Image(
                    label="Shaded preview: front, turned, crop", format="png", interactive=False,
                    elem_id="df2net-preview",
                )

        views = [mesh, depth, normals, preview]
        reconstruct = {
            "fn": demo.handle_reconstruct,
            "inputs": [photo, stage, state],
            "outputs": [boxed, state, *views, zip_file, timings],
            "concurrency_id": "model",
            "concurrency_limit": 1,
            # Progress, and the error mark of a refused photo, on the two main pictures only:
            # the other outputs keep the last good result.
            "show_progress_on": [boxed, mesh],
        }
        selector = {"fn": demo.face_selector, "inputs": [state], "outputs": [face], "api_visibility": "private"}
        run.click(**reconstruct, api_name="reconstruct").success(**selector)
        examples.load_input_event.then(**reconstruct, api_visibility="private").success(**selector)
        for control in (face, stage):
            control.input(
                demo.handle_show,
                inputs=[state, face, stage],
                outputs=views,
                concurrency_id="views",
                api_visibility="private",
            )
    blocks.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
    return blocks


def _forget(result: PhotoResult | None) -> None:
    """Called by Gradio when a session's result expires: its files go too."""
    if result is not None:
        shutil.rmtree(result.folder, ignore_errors=True)


def launch(blocks: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, work_dir: str | Path | None = None, **kwargs: Any):
    """Serve ``blocks`` (blocking unless ``prevent_thread_lock=True``); never a share link."""
    allowed = [str(work_dir)] if work_dir is not None else None
    return blocks.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        max_file_size=MAX_UPLOAD_BYTES,
        theme=theme(),
        css=THEME_CSS,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        run_history=False,  # Gradio's run history could offer to copy runs to a Hugging Face bucket
        footer_links=["api", "settings"],
        show_error=False,
        allowed_paths=allowed,
        # Skip Gradio's check that the local URL answers a HEAD within 3 s (networking.url_ok):
        # on a busy machine it misses, and launch then raises "When localhost is not accessible,
        # a shareable link must be created" while its server thread keeps the process alive.
        # That error is all the check does, and it is about share links, which this demo never makes.
        _frontend=False,
        **kwargs,
    )
