"""The functions behind the page's controls: :class:`WebDemo`, the demo's work
(:class:`~df2net.web.work.DemoWork`) with a Gradio handler for each event.

A handler turns the work's errors into ``gr.Error`` with one line: the photo's own reason (not an
image, no face ...) or, for anything unexpected, "internal error" and its first line, so the
server stays up.
"""

from __future__ import annotations

import logging

from df2net.errors import InputError
from df2net.reconstruct import STAGES
from df2net.web.gradio_env import gr
from df2net.web.work import DemoWork, PhotoResult, forget

log = logging.getLogger(__name__)


class WebDemo(DemoWork):
    """The demo's work (:class:`~df2net.web.work.DemoWork`, same arguments) and its Gradio
    handlers: ``handle_reconstruct`` (the Reconstruct button and the ``/reconstruct`` API
    endpoint), ``face_selector`` and ``skipped_note`` (after it), ``handle_show`` (the face and
    stage controls)."""

    def handle_reconstruct(
        self,
        photo: str | None,
        stage: str = "finer",
        previous: PhotoResult | None = None,
        progress=gr.Progress(),  # noqa: B008 - Gradio's way of asking for a progress bar
    ) -> tuple:
        """Event handler of the Reconstruct button and the ``/reconstruct`` API endpoint.

        Returns: the boxed photo, the session state (a :class:`PhotoResult`), then face 0's
        GLB path, depth, normal and preview images, the zip path and the timings as Markdown. A
        bad photo raises ``gr.Error`` with the one-line reason. ``previous`` is the session's
        earlier result, whose files are deleted on success.
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
            forget(previous)
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

    @staticmethod
    def skipped_note(result: PhotoResult | None) -> str:
        """The Markdown under the face selector: the faces found but not reconstructed, and why."""
        return result.skipped_markdown() if result is not None else ""

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


def _one_line(text: str) -> str:
    return text.splitlines()[0] if text else text
