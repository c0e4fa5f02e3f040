"""The browser demo: a Gradio page over one :class:`~df2net.reconstruct.Reconstructor`.

A photo (uploaded, dropped, pasted, or one of the bundled samples) is reconstructed once; the
page shows it with every face boxed and numbered (and the faces found but skipped, lettered, with
why under the face selector), and for the chosen face and network stage (D, D+F or D+F+Fr) the
textured mesh, the depth map with its colour bar, the normal map and the shaded preview, plus one
zip of every output file of every face and the time each step took. The same reconstruction is
Gradio's HTTP API endpoint ``/reconstruct``.

Private and offline: no analytics, no share link, no run history, system fonts only (the page
loads nothing from outside the server), and uploads and results live in one temporary folder
that is swept as results expire and deleted when the server stops.

One room a job, gathered here:

- :mod:`df2net.web.pictures`: the pictures shown (boxed photo, depth with colour bar), pure
  functions of arrays;
- :mod:`df2net.web.work`: the work in plain Python (:class:`~df2net.web.work.DemoWork`: photo
  in, :class:`PhotoResult` out, files zipped and swept);
- :mod:`df2net.web.handlers`: :class:`WebDemo`, that work with a Gradio handler per control;
- :mod:`df2net.web.page`: the page's layout, look and events (:func:`build_demo`) and the
  server (:func:`launch`);
- :mod:`df2net.web.gradio_env`: Gradio, imported with analytics and server-side rendering off.
"""

from df2net.web.handlers import WebDemo
from df2net.web.page import MAX_QUEUE, STAGE_CHOICES, PhotoInput, build_demo, launch, sample_photos
from df2net.web.pictures import depth_range, depth_with_colorbar, draw_face_boxes
from df2net.web.work import KEEP_RESULTS_S, MAX_PIXELS, MAX_UPLOAD_BYTES, FaceViews, PhotoResult, write_zip

__all__ = [
    "KEEP_RESULTS_S",
    "MAX_PIXELS",
    "MAX_QUEUE",
    "MAX_UPLOAD_BYTES",
    "STAGE_CHOICES",
    "FaceViews",
    "PhotoInput",
    "PhotoResult",
    "WebDemo",
    "build_demo",
    "depth_range",
    "depth_with_colorbar",
    "draw_face_boxes",
    "launch",
    "sample_photos",
    "write_zip",
]
