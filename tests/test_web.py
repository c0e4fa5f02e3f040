"""The browser demo without a browser: its handlers in-process, and its HTTP API in a server.

Needs the ``web`` extra (Gradio); skipped without it. The server test starts
``df2net serve`` on 127.0.0.1 at a free port with random weights, sends a burst of API requests
with ``gradio_client``, and checks that every one is answered, that bad input gets its one-line
reason while the server keeps answering, that the server's memory stays bounded, that it never
connects anywhere but this machine, and that it deletes its files when it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason='the browser demo needs the web extra: pip install -e ".[web]"')

#: Every file ``FaceResult.save`` writes for one face (the README's table); the zip holds these
#: for every face, under ``<photo stem>/face<i>/``.
FACE_FILES = frozenset(
    {
        "crop.png", "mask.png", "depth.npy", "depth.png", "depth.json", "depth_color.png",
        "normals.png", "points.ply", "mesh.obj", "mesh.mtl", "mesh.png", "mesh.glb",
        "preview.png", "metadata.json",
    }
)  # fmt: skip

#: The server may use this much resident memory at most while answering the burst.
SERVER_RSS_LIMIT = 3 * 2**30


# --------------------------------------------------------------------------------------------
# In-process: the handlers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(random_weights, tmp_path_factory):
    from df2net.reconstruct import Reconstructor
    from df2net.web.app import WebDemo

    return WebDemo(Reconstructor(weights=random_weights), tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def two_faces(sample_photo, tmp_path_factory) -> Path:
    """The sample's face and its mirror image side by side: a photo with two faces."""
    from PIL import Image

    rgb = np.asarray(Image.open(sample_photo).convert("RGB"))[:320, 40:360]
    path = tmp_path_factory.mktemp("photos") / "two faces.png"
    Image.fromarray(np.concatenate([rgb, rgb[:, ::-1]], axis=1)).save(path)
    return path


@pytest.fixture(scope="module")
def two_faces_outputs(demo, two_faces):
    return demo.handle_reconstruct(str(two_faces), "finer")


def test_handler_returns_boxed_photo_views_and_zip_of_every_face(demo, two_faces_outputs, tmp_path) -> None:
    boxed, result, glb, depth, normals, preview, zip_path, timings = two_faces_outputs
    assert len(result.faces) == 2
    assert boxed.shape == (320, 640, 3) and boxed.dtype == np.uint8
    selector = demo.face_selector(result)
    assert [value for _, value in selector.choices] == [0, 1] and selector.value == 0
    assert Path(glb).read_bytes()[:4] == b"glTF"
    assert depth.shape[0] == 512 and depth.shape[1] > 512 and depth.dtype == np.uint8  # map + colour bar
    assert normals.shape == (512, 512, 3) and preview.shape == (512, 3 * 512, 3)
    assert all(k in timings for k in ("face detection", "network", "all output files"))

    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        assert archive.testzip() is None
    assert names == {f"two_faces/face{i}/{name}" for i in (0, 1) for name in FACE_FILES}
    # FACE_FILES is what FaceResult.save writes.
    written = result.faces[1].save(tmp_path / "face1")
    assert {p.name for p in written} == FACE_FILES


def test_boxes_are_drawn_on_the_photo(two_faces_outputs, two_faces) -> None:
    from PIL import Image

    boxed, *_ = two_faces_outputs
    original = np.asarray(Image.open(two_faces).convert("RGB"))
    changed = np.any(boxed != original, axis=2)
    assert 0.005 < changed.mean() < 0.2  # box outlines and number labels, not the whole picture
    left, right = changed[:, :320], changed[:, 320:]
    assert left.any() and right.any()  # one box on each face


def test_stage_switch_changes_the_views(demo, two_faces_outputs) -> None:
    _, result, glb, depth, normals, *_ = two_faces_outputs
    dense = demo.handle_show(result, 0, "dense")
    assert dense[0] != glb and Path(dense[0]).read_bytes()[:4] == b"glTF"
    assert dense[1].shape == depth.shape and not np.array_equal(dense[1], depth)
    assert not np.array_equal(dense[2], normals)
    again = demo.handle_show(result, 0, "finer")
    assert again[0] == glb and np.array_equal(again[1], depth)
    other_face = demo.handle_show(result, 1, "finer")
    assert not np.array_equal(other_face[1], depth)


def _error_text(call) -> str:
    with pytest.raises(gr.Error) as info:
        call()
    return info.value.message


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("notes.png", lambda p, sample: p.write_text("this is not an image\n"), "not an image (unrecognised file format)"),
        ("cut.png", lambda p, sample: p.write_bytes(sample.read_bytes()[:5000]), "truncated or corrupt image"),
        ("wall.png", lambda p, sample: _blank(p), "no face found"),
        ("empty.jpg", lambda p, sample: p.write_bytes(b""), "empty file (0 bytes)"),
    ],
)
def test_bad_photo_gives_its_one_line_reason(demo, sample_photo, tmp_path, name, make, reason) -> None:
    path = tmp_path / name
    make(path, sample_photo)
    assert _error_text(lambda: demo.handle_reconstruct(str(path), "finer")) == f"{name}: {reason}"


def _blank(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (400, 300), (128, 140, 150)).save(path)


def test_limits_on_file_size_and_pixels(demo, sample_photo, tmp_path) -> None:
    from df2net.web.app import WebDemo

    small = WebDemo(demo.reconstructor, tmp_path / "small", max_bytes=100_000, max_pixels=200_000)
    text = _error_text(lambda: small.handle_reconstruct(str(sample_photo)))
    assert text.startswith("astronaut.png: file too large (") and "the limit is" in text
    from PIL import Image

    wide = tmp_path / "wide.png"
    Image.new("RGB", (600, 400)).save(wide)  # 240 000 pixels, a tiny file
    text = _error_text(lambda: small.handle_reconstruct(str(wide)))
    assert text == "wide.png: image too large (600 x 400 = 0.2 megapixels; the limit is 0.2)"
    assert "\n" not in _error_text(lambda: demo.handle_reconstruct(None))


def test_old_request_folders_are_swept(demo, tmp_path) -> None:
    old = demo.requests_dir / "0-old"
    old.mkdir()
    (old / "x.glb").write_bytes(b"x")
    os.utime(old, (0, 0))
    demo.sweep()
    assert not old.exists()


def test_colour_bar_spans_the_depth_range() -> None:
    from df2net.export import depth_to_colormap
    from df2net.web.app import depth_with_colorbar

    depth = np.tile(np.linspace(0.0, 50.0, 512, dtype=np.float32), (512, 1))
    mask = np.ones_like(depth, bool)
    picture = depth_with_colorbar(depth, mask, (0.0, 50.0))
    assert picture.shape[0] == 512 and picture.shape[1] > 512
    assert np.array_equal(picture[:, :512], depth_to_colormap(depth, mask, value_range=(0.0, 50.0)))
    column = [tuple(px) for px in picture[:, 512 + 20]]  # a column through the bar
    outline = [i for i, px in enumerate(column) if px == (60, 60, 60)]
    ramp = column[outline[0] + 1 : outline[-1]]
    near, far = depth_to_colormap(np.array([[50.0, 0.0]]), np.ones((1, 2), bool), value_range=(0.0, 50.0))[0]
    assert ramp[0] == tuple(near) and ramp[-1] == tuple(far)  # near at the top, far at the bottom


def test_photo_input_hands_over_the_file_undecoded(tmp_path) -> None:
    import base64

    from gradio.components.image import ImageData

    from df2net.web.app import PhotoInput

    photo = PhotoInput(type="filepath")
    assert photo.get_block_name() == "image"  # drawn by Gradio's own Image component
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")  # Gradio's Image would fail on this with a generic error
    assert photo.preprocess(ImageData(path=str(notes), orig_name="notes.png")) == str(notes)
    pasted = photo.preprocess(ImageData(url="data:image/png;base64," + base64.b64encode(b"\x89PNG...").decode()))
    assert Path(pasted).read_bytes() == b"\x89PNG..."
    assert photo.preprocess(None) is None


def test_serve_command_is_registered_and_refuses_missing_weights(tmp_path, capsys, monkeypatch) -> None:
    from df2net.cli import build_parser, main

    for name in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED"):  # `serve` sets them; restored after
        monkeypatch.delenv(name, raising=False)

    args = build_parser().parse_args(["serve", "--port", "7999", "--weights", "w.safetensors"])
    assert (args.host, args.port, args.weights) == ("127.0.0.1", 7999, "w.safetensors")
    assert main(["serve", "--port", str(free_port()), "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# A real server: `df2net serve` in a subprocess
# --------------------------------------------------------------------------------------------

# Runs `df2net serve` with an audit hook that records every network connection and name lookup
# the server makes to anywhere other than this machine.
_SERVER_SCRIPT = r"""
import json, sys
record = open(sys.argv[1], "a", buffering=1)
LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::", ""}
def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = str(args[1][0])
    elif event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else str(args[0] or "")
    else:
        return
    if host not in LOCAL and not host.startswith("127."):
        record.write(json.dumps([event, host]) + "\n")
sys.addaudithook(hook)
from df2net.cli import main
sys.exit(main(sys.argv[2:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running ``df2net serve``."""

    process: subprocess.Popen
    url: str
    work_dir: Path
    log: Path
    outside: Path  # the audit hook's record of connections off this machine

    def outside_connections(self) -> list:
        if not self.outside.exists():
            return []
        return [json.loads(line) for line in self.outside.read_text().splitlines()]

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@contextlib.contextmanager
def serve(weights: Path, folder: Path, timeout: float = 120) -> Iterator[Server]:
    """Start ``df2net serve`` on a free port and wait until it answers; stop it afterwards."""
    import urllib.request

    port = free_port()
    log, outside = folder / "server.log", folder / "outside_connections.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--weights", str(weights)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_SCRIPT, str(outside), *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}/"
    server = None
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"df2net serve exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"df2net serve did not answer within {timeout} s:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + "config", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        line = next(li for li in log.read_text().splitlines() if "temporary files in" in li)
        work_dir = Path(line.split("temporary files in ", 1)[1].split(" (", 1)[0])
        server = Server(process, url, work_dir, log, outside)
        yield server
    finally:
        if server is not None:
            server.stop()
        elif process.poll() is None:
            process.kill()
            process.wait(10)


class PeakRss:
    """Samples a process's resident memory in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(Exception):
                self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _working(status) -> bool:
    """Whether the server is at work on a job (not queued, and not done: a finished job's last
    progress report stays its status while the client fetches its files)."""
    from gradio_client.utils import Status

    if status.code == Status.PROCESSING:
        return True
    units = status.progress_data or []
    return status.code == Status.PROGRESS and not (units and units[-1].desc == "Done")


def test_api_answers_a_burst_and_bad_input_with_bounded_memory(random_weights, sample_photo, tmp_path) -> None:
    pytest.importorskip("psutil")
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image\n")
    huge = tmp_path / "huge.png"
    huge.write_bytes(os.urandom(21 * 2**20))
    with serve(random_weights, tmp_path) as server:
        client = Client(server.url, download_files=str(tmp_path / "downloads"), verbose=False)
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert "/reconstruct" in endpoints

        # A burst: six requests at once, queued and answered one after the other.
        with PeakRss(server.process.pid) as rss:
            jobs = [client.submit(handle_file(str(sample_photo)), "finer", api_name="/reconstruct") for _ in range(6)]
            most_at_once, deadline = 0, time.monotonic() + 180
            while not all(job.done() for job in jobs) and time.monotonic() < deadline:
                most_at_once = max(most_at_once, sum(_working(job.status()) for job in jobs))
                time.sleep(0.1)
            results = [job.result(timeout=5) for job in jobs]
        assert len(results) == 6
        assert most_at_once == 1  # one reconstruction at a time
        for boxed, glb, depth, normals, preview, zip_path, timings in results:
            assert "astronaut.png" in timings and "1 face" in timings
            assert Path(glb).read_bytes()[:4] == b"glTF"
            assert all(Path(p).stat().st_size > 0 for p in (boxed, depth, normals, preview))
            with zipfile.ZipFile(zip_path) as archive:
                assert set(archive.namelist()) == {f"astronaut/face0/{n}" for n in FACE_FILES}
        print(f"server peak RSS during the burst: {rss.peak / 2**20:.0f} MiB")
        assert rss.peak < SERVER_RSS_LIMIT

        # Bad input: its reason comes back, and the server keeps answering.
        with pytest.raises(AppError, match=r"notes\.png: not an image \(unrecognised file format\)"):
            client.predict(handle_file(str(bad)), "finer", api_name="/reconstruct")
        with pytest.raises(Exception, match=r"(?i)(too large|maximum|exceed|413)"):
            client.predict(handle_file(str(huge)), "finer", api_name="/reconstruct")
        again = client.predict(handle_file(str(sample_photo)), "dense", api_name="/reconstruct")
        assert Path(again[1]).read_bytes()[:4] == b"glTF"

        assert server.work_dir.is_dir() and (server.work_dir / "requests").is_dir()
        assert server.stop() == 0
        assert not server.work_dir.exists(), "the server left its temporary folder behind"
        assert server.outside_connections() == [], "the server reached beyond this machine"
