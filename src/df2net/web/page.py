"""The demo's page: its layout, look and events over a :class:`~df2net.web.handlers.WebDemo`
(:func:`build_demo`), the photo input, and the server (:func:`launch`).

Private and offline: no analytics, no share link, no run history, system fonts only (the page
loads nothing from outside the server).
"""

from __future__ import annotations

import base64
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import df2net
from df2net.web.gradio_env import gr
from df2net.web.handlers import WebDemo
from df2net.web.work import KEEP_RESULTS_S, MAX_UPLOAD_BYTES, forget

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

THEME_CSS = "#df2net-timings table { font-size: 0.9em; }"


def sample_photos() -> list[Path]:
    """The sample photos shipped in the package, sorted by name."""
    return sorted(p for p in SAMPLES_DIR.glob("*.png") if p.is_file())


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
        state = gr.State(None, time_to_live=KEEP_RESULTS_S, delete_callback=forget)
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
                skipped = gr.Markdown(elem_id="df2net-skipped")
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
        note = {"fn": demo.skipped_note, "inputs": [state], "outputs": [skipped], "api_visibility": "private"}
        run.click(**reconstruct, api_name="reconstruct").success(**selector).success(**note)
        examples.load_input_event.then(**reconstruct, api_visibility="private").success(**selector).success(**note)
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
