"""``df2net serve``: the browser demo on this machine. Gradio is imported only when it runs."""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import os
import shutil
import signal
import sys
import tempfile


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand to the ``df2net`` command."""
    serve = subparsers.add_parser(
        "serve",
        help="browser demo on this machine (needs the web extra)",
        description=(
            "Serve the browser demo: upload a photo, see every face in 3D, download all outputs. "
            "Runs offline; photos and results stay in a temporary folder deleted at exit. "
            'Needs the web extra: pip install "df2net[web]".'
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    serve.add_argument("--weights", metavar="W", help="weights (.safetensors); default: the shipped ones")
    serve.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from df2net.errors import Df2netError

    work_dir = tempfile.mkdtemp(prefix="df2net-web-")
    cleanup = _Cleanup(work_dir)
    atexit.register(cleanup)
    try:
        # Gradio reads these when it is imported: no analytics, its files in our folder.
        os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
        os.environ["GRADIO_TEMP_DIR"] = os.path.join(work_dir, "gradio")
        try:
            from df2net.web.app import WebDemo, build_demo, launch
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "gradio":
                print('df2net: error: the browser demo needs Gradio: pip install "df2net[web]"', file=sys.stderr)
                return 2
            raise
        from df2net.reconstruct import Reconstructor

        try:
            reconstructor = Reconstructor(weights=args.weights, device=args.device)
        except Df2netError as exc:
            print(f"df2net: error: {exc}", file=sys.stderr)
            return 2
        if not _is_loopback(args.host):
            print(f"df2net serve: listening on {args.host}: anyone who can reach this machine can use the demo",
                  file=sys.stderr)
        print(f"df2net serve: temporary files in {work_dir} (deleted at exit)", flush=True)
        blocks = build_demo(WebDemo(reconstructor, work_dir))
        signal.signal(signal.SIGTERM, _exit_on_signal)  # so `kill` cleans up like Ctrl-C does
        launch(blocks, host=args.host, port=args.port, work_dir=work_dir)
        return 0
    finally:
        cleanup()


class _Cleanup:
    """Delete the server's temporary folder, once."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __call__(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _exit_on_signal(signum, frame) -> None:  # noqa: ARG001
    raise SystemExit(0)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
