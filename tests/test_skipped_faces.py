"""Every face found but not reconstructed is counted and named: by the detector, the Python API,
``photo.json``, ``results.parquet``, the run's summary line and the web page.

The photos: demo photo 5 at full size with a copy of it shrunk so its face box is about 30 px (under
the default minimum, the detector's reach of 40 px) beside it, and that small copy alone.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from df2net.batch.records import RECORD_NAME
from df2net.batch.results import RESULTS_NAME, PhotoResult, RunSummary
from df2net.cli import main
from df2net.config import MIN_FACE_SIZE

#: Box side (px) of the small face.
SMALL_SIDE = 30.0


@pytest.fixture(scope="module")
def photos(demo_images, face_detector, tmp_path_factory) -> dict[str, Path]:
    """``{"both": the big face (demo photo 5, on the left) and the small one beside it, "alone":
    the small one}`` as PNGs in one folder."""
    rgb = demo_images["5.png"]
    scale = SMALL_SIDE / face_detector.detect(rgb)[0].side
    h, w = rgb.shape[:2]
    small = np.asarray(Image.fromarray(rgb).resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS))
    both = np.full((h, w + 40 + small.shape[1], 3), 128, np.uint8)
    both[:h, :w] = rgb
    both[: small.shape[0], w + 40 :] = small
    alone = np.full((160, 160, 3), 128, np.uint8)
    top = (160 - small.shape[0]) // 2
    alone[top : top + small.shape[0], top : top + small.shape[1]] = small
    folder = tmp_path_factory.mktemp("skipped") / "in"
    folder.mkdir()
    paths = {"both": folder / "both.png", "alone": folder / "alone.png"}
    Image.fromarray(both).save(paths["both"])
    Image.fromarray(alone).save(paths["alone"])
    return paths


def test_the_default_minimum_is_the_detectors_reach(face_detector) -> None:
    assert MIN_FACE_SIZE == face_detector.cfg.search_size == 40
    assert face_detector.min_face_size == MIN_FACE_SIZE


def test_a_face_under_the_minimum_is_skipped_with_its_reason_and_size(photos, face_detector) -> None:
    from df2net.detection import FaceDetector
    from df2net.io import load_image

    rgb = load_image(photos["both"]).rgb
    faces = face_detector.detect(rgb)
    assert len(faces) == 1 and faces[0].side > 200  # callers that want faces get the big one
    (skipped,) = faces.skipped
    assert skipped.reason == "too_small"
    assert 0.8 * SMALL_SIDE < skipped.side < MIN_FACE_SIZE
    assert skipped.centre[0] > faces[0].box[2]  # the small face, right of the big one
    assert skipped.why == f"{math.floor(skipped.side)} px, under the minimum face size of 40 px"
    # With the minimum below it, the same face is kept.
    lower = FaceDetector(min_face_size=math.floor(0.9 * skipped.side))
    kept = lower.detect(rgb)
    assert len(kept) == 2 and not kept.skipped
    assert abs(kept[1].side - skipped.side) < 0.1 * skipped.side


def test_the_python_api_names_the_skipped_faces(photos, random_weights) -> None:
    from df2net import Reconstructor
    from df2net.errors import NoFaceError

    rec = Reconstructor(weights=random_weights)
    faces = rec(photos["both"])
    assert len(faces) == 1 and [s.reason for s in faces.skipped] == ["too_small"]
    with pytest.raises(NoFaceError, match=r"alone\.png: face too small \(\d+ px; need at least 40\)$") as info:
        rec(photos["alone"])
    assert [s.reason for s in info.value.skipped] == ["too_small"]


def _rows(out: Path) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in pq.read_table(out / RESULTS_NAME).to_pylist()}


def _sizes(photos: dict[str, Path], detector) -> list[float]:
    """The ``size_px`` of every face skipped in the photos, as photo.json records it."""
    from df2net.io import load_image

    found = [s for p in photos.values() for s in detector.detect(load_image(p).rgb).skipped]
    return [s.to_json()["size_px"] for s in found]


def test_photo_json_results_table_and_summary_line_name_them(
    photos, demo_images, face_detector, random_weights, tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    args = ["reconstruct", str(photos["both"].parent), "-o", str(out), "--weights", str(random_weights),
            "--formats", "metadata", "-q"]
    assert main(args) == 1  # the photo with only the small face fails
    printed = capsys.readouterr()
    record = json.loads((out / "both" / RECORD_NAME).read_text())
    assert record["faces"] == 1
    (entry,) = record["skipped_faces"]
    assert entry["reason"] == "too_small" and 0.8 * SMALL_SIDE < entry["size_px"] < MIN_FACE_SIZE
    assert entry["why"].endswith("under the minimum face size of 40 px")
    x0, y0, x1, y1 = entry["box_xyxy"]
    assert x1 - x0 == pytest.approx(entry["size_px"], abs=0.2) and x0 > demo_images["5.png"].shape[1]
    rows = _rows(out)
    assert rows["both.png"]["status"] == "ok" and rows["both.png"]["skipped_faces"] == 1
    assert rows["alone.png"]["status"] == "failed" and rows["alone.png"]["skipped_faces"] == 1
    assert re.search(r"alone\.png: face too small \(\d\d px; need at least 40\)$", rows["alone.png"]["error"])
    smallest = min(_sizes(photos, face_detector))
    keep = math.floor(0.9 * smallest)
    line = (f"2 faces under 40 px skipped (the smallest {smallest:.0f} px); "
            f"--min-face-size {keep} keeps faces that small")
    assert line in printed.out.splitlines()

    # The option the line names keeps them: the rerun redoes both photos, though one was done.
    assert main([*args, "--min-face-size", str(keep)]) == 0
    printed = capsys.readouterr()
    rows = _rows(out)
    assert [(r["status"], r["faces"], r["skipped_faces"], r["reused"]) for r in rows.values()] == [
        ("ok", 1, 0, False),
        ("ok", 2, 0, False),
    ]
    assert "skipped" not in printed.out
    assert json.loads((out / "both" / RECORD_NAME).read_text())["skipped_faces"] == []


def test_summary_line_counts_each_reason() -> None:
    from df2net.batch.inputs import Photo

    def result(*skipped: tuple[str, float]) -> PhotoResult:
        photo = Photo(path="p.jpg", absolute="/p.jpg", stem="p", order=0)
        entries = [{"reason": reason, "size_px": size} for reason, size in skipped]
        return PhotoResult.failed(photo, "p.jpg: face too small", entries)

    rows = [result(("too_small", 31.7)), result(("too_small", 38.2), ("not_confirmed", 36.5))]
    summary = RunSummary(rows, 1.0, Path("out"))
    assert summary.skipped_line(40) == (
        "2 faces under 40 px skipped (the smallest 32 px); --min-face-size 28 keeps faces that small; "
        "1 face that HOG found but dlib's CNN did not confirm skipped (--detector hog goes without the CNN)"
    )
    assert RunSummary([result()], 1.0, Path("out")).skipped_line(40) is None
    assert result(("too_small", 31.7)).columns()["skipped_faces"] == 1


def test_the_web_page_says_which_faces_were_skipped_and_why(photos, demo_images, random_weights, tmp_path) -> None:
    pytest.importorskip("gradio", reason='the browser demo needs the web extra: pip install -e ".[web]"')
    from df2net.reconstruct import Reconstructor
    from df2net.web.app import WebDemo
    from df2net.web.pictures import SKIPPED_COLOUR

    demo = WebDemo(Reconstructor(weights=random_weights), tmp_path / "web")
    boxed, result, *_ = demo.handle_reconstruct(str(photos["both"]), "finer")
    assert len(result.faces) == 1 and [s.reason for s in result.skipped] == ["too_small"]
    note = demo.skipped_note(result)
    assert "Not reconstructed" in note and "- **a**: " in note and "under the minimum face size of 40 px" in note
    grey = np.all(boxed == SKIPPED_COLOUR, axis=2)
    assert grey[:, demo_images["5.png"].shape[1] :].any()  # its box, right of the big face
    assert demo.skipped_note(None) == ""


@pytest.mark.ray
def test_the_ray_engine_counts_them_as_the_local_engine_does(photos, random_weights, tmp_path) -> None:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install -e '.[cluster]')")
    common = ["reconstruct", str(photos["both"].parent), "--weights", str(random_weights),
              "--formats", "metadata", "-q"]
    assert main([*common, "-o", str(tmp_path / "local")]) == 1
    ray = subprocess.run(
        [sys.executable, "-m", "df2net", *common, "-o", str(tmp_path / "ray"), "--engine", "ray", "--num-cpus", "2"],
        check=False, capture_output=True, text=True, timeout=1800,
    )
    assert ray.returncode == 1, ray.stderr[-3000:]
    columns = ["path", "status", "faces", "skipped_faces", "error"]
    local_rows, ray_rows = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert [[r[k] for k in columns] for r in ray_rows.values()] == [[r[k] for k in columns] for r in local_rows.values()]
    assert pq.read_schema(tmp_path / "ray" / RESULTS_NAME) == pq.read_schema(tmp_path / "local" / RESULTS_NAME)
    skipped = [json.loads((tmp_path / run / "both" / RECORD_NAME).read_text())["skipped_faces"] for run in ("local", "ray")]
    assert skipped[0] == skipped[1] and len(skipped[0]) == 1
    assert "2 faces under 40 px skipped" in ray.stdout
