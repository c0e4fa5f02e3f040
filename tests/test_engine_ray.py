"""``df2net reconstruct --engine ray``: a local 2-CPU Ray cluster against the local engine.

One set of a dozen inputs (demo photos, which are RGBA PNGs, a photo with two faces, a
truncated file, a text file named .jpg, an empty file, a faceless image) is reconstructed by
the local engine and by the Ray engine; the outputs, the results table, the exit status, a
rerun and a run whose workers are killed are checked against each other. Each Ray run is a
``df2net`` subprocess, so Ray starts fresh (on 127.0.0.1, which the rerun's log line shows) and
leaves nothing in pytest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from df2net.batch.faults import CRASH_ENV, FAULT_ENV, FAULT_POINTS
from df2net.batch.inputs import plan_photos
from df2net.batch.records import RECORD_NAME, completed_record
from df2net.batch.results import RESULTS_NAME

if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed (pip install -e '.[cluster]')", allow_module_level=True)

pytestmark = pytest.mark.ray

FORMATS = "depth,metadata"
BAD = {  # input name -> the end of its one-line error
    "cut.png": "cut.png: truncated or corrupt image",
    "notes.jpg": "notes.jpg: not an image (unrecognised file format)",
    "empty.png": "empty.png: empty file (0 bytes)",
    "wall.jpg": "wall.jpg: no face found",
}
TIMEOUT_S = 1800  # a safety net for a hung run; a run on 2 busy cores takes a few minutes


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray_engine")


@pytest.fixture(scope="module")
def weights(work: Path) -> Path:
    """The shipped weights, copied once, so every run of this module uses the same file."""
    from df2net.model.weights import default_weights_path

    shipped = default_weights_path()
    if shipped is None:
        pytest.skip("no shipped weights")
    copy = work / "weights.safetensors"
    shutil.copyfile(shipped, copy)
    return copy


@pytest.fixture(scope="module")
def inputs(work: Path, demo_files: list[Path]) -> list[str]:
    """The command-line inputs: a folder of 10 files and a list naming two more."""
    from PIL import Image

    from df2net.io import load_image

    folder = work / "in"
    folder.mkdir()
    for src in demo_files[:6]:
        shutil.copyfile(src, folder / src.name)
    halves = [np.asarray(Image.fromarray(load_image(p).rgb).resize((360, 360))) for p in demo_files[7:9]]
    Image.fromarray(np.concatenate(halves, axis=1)).save(folder / "two_faces.png")
    (folder / "cut.png").write_bytes(demo_files[9].read_bytes()[:4000])
    (folder / "notes.jpg").write_text("not a photo")
    (folder / "empty.png").write_bytes(b"")
    more = work / "more"
    more.mkdir()
    Image.new("RGB", (320, 240), (120, 130, 140)).save(more / "wall.jpg")
    shutil.copyfile(demo_files[10], more / demo_files[0].name)  # same stem as a folder photo
    listing = work / "list.txt"
    listing.write_text(f"{more / demo_files[0].name}\n# a faceless photo\n{more / 'wall.jpg'}\n")
    return [str(folder), f"@{listing}"]


def _reconstruct(inputs: list[str], out: Path, weights: Path, *extra: str, env: dict | None = None):
    cmd = [sys.executable, "-m", "df2net", "reconstruct", *inputs, "-o", str(out), "--weights", str(weights),
           "--formats", FORMATS, *extra]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


def _ray(inputs, out, weights, *extra: str, env=None, quiet: bool = True):
    ray_options = ("--engine", "ray", "--num-cpus", "2", "--batch-faces", "4", *(["-q"] if quiet else []))
    return _reconstruct(inputs, out, weights, *ray_options, *extra, env=env)


def _weights_sha(weights: Path) -> str:
    from df2net.model.weights import load_weights

    return str(load_weights(weights).metadata["sha256"])


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / RESULTS_NAME).to_pylist()


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def local_run(inputs, weights, work: Path):
    """The local engine, in this process: its exit status and output folder."""
    from df2net.cli import main

    out = work / "local"
    status = main(["reconstruct", *inputs, "-o", str(out), "--weights", str(weights), "--formats", FORMATS, "-q"])
    return status, out


@pytest.fixture(scope="module")
def ray_run(inputs, weights, work: Path):
    done = _ray(inputs, work / "ray", weights)
    return done, work / "ray"


def test_same_faces_and_depth_as_the_local_engine(local_run, ray_run) -> None:
    (local_status, local_out), (ray, ray_out) = local_run, ray_run
    assert local_status == 1
    assert ray.returncode == 1, ray.stderr[-3000:]
    local_faces = sorted(p.relative_to(local_out) for p in local_out.glob("*/face*"))
    assert local_faces and sorted(p.relative_to(ray_out) for p in ray_out.glob("*/face*")) == local_faces
    assert len(local_faces) == 9 and (local_out / "two_faces" / "face1").is_dir()
    for face in local_faces:
        a, b = np.load(local_out / face / "depth.npy"), np.load(ray_out / face / "depth.npy")
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-3, face
        meta_a = json.loads((local_out / face / "metadata.json").read_text())
        meta_b = json.loads((ray_out / face / "metadata.json").read_text())
        assert meta_a["box_xyxy"] == meta_b["box_xyxy"] and meta_a["source"] == meta_b["source"]


def test_results_table_and_exit_status(local_run, ray_run, weights) -> None:
    (_, local_out), (ray, ray_out) = local_run, ray_run
    rows = _rows(ray_out)
    plain = ["path", "folder", "status", "faces", "error", "reused", "weights_sha256"]
    assert [{k: r[k] for k in plain} for r in rows] == [{k: r[k] for k in plain} for r in _rows(local_out)]
    assert len(rows) == 12
    for name, cause in BAD.items():
        (row,) = [r for r in rows if Path(r["path"]).name == name]
        assert row["status"] == "failed" and row["error"].endswith(cause) and row["faces"] == 0
    good = [r for r in rows if r["status"] == "ok"]
    assert len(good) == 8 and sum(r["faces"] for r in good) == 9
    assert {r["folder"] for r in good} >= {"two_faces", "1", "1-2"}
    assert {r["weights_sha256"] for r in good} == {_weights_sha(weights)}
    for r in good:
        assert r["network_s"] > 0 and r["write_s"] > 0 and r["load_s"] >= 0 and r["detect_crop_s"] > 0
    assert "12 photo(s): 8 reconstructed, 0 already done, 4 failed; 9 face(s)" in ray.stdout
    for cause in BAD.values():
        assert cause in ray.stderr
    assert "Traceback" not in ray.stderr


def test_rerun_skips_finished_photos(inputs, ray_run, weights) -> None:
    ray, out = ray_run
    assert ray.returncode == 1
    before = _mtimes(out)
    again = _ray(inputs, out, weights, quiet=False)
    assert again.returncode == 1, again.stderr[-3000:]
    assert "df2net: Ray cluster at 127.0.0.1:" in again.stderr and "(local; 1 node(s), 2 CPUs" in again.stderr
    rows = _rows(out)
    assert [r["reused"] for r in rows if r["status"] == "ok"] == [True] * 8
    assert [r["status"] for r in rows].count("failed") == 4
    after = _mtimes(out)
    del after[RESULTS_NAME], before[RESULTS_NAME]
    assert after == before  # not one output file rewritten
    assert "12 photo(s): 0 reconstructed, 8 already done, 4 failed; 0 face(s)" in again.stdout


def test_killed_workers_are_retried_and_leave_no_partial_output(inputs, weights, work: Path) -> None:
    out, kill_dir = work / "killed", work / "kill"
    kill_dir.mkdir()
    run = _ray(inputs, out, weights, env={**os.environ, FAULT_ENV: str(kill_dir)})
    assert run.returncode == 1, run.stderr[-3000:]
    assert sorted(p.name for p in kill_dir.iterdir()) == sorted(FAULT_POINTS)  # both workers died once
    rows = _rows(out)
    assert len(rows) == 12 and len({r["path"] for r in rows}) == 12
    assert [r["status"] for r in rows].count("ok") == 8 and sum(r["faces"] for r in rows) == 9
    sha = _weights_sha(weights)
    for photo, row in zip(plan_photos(inputs), rows):
        if row["status"] == "ok":
            assert completed_record(out, photo, frozenset(FORMATS.split(",")), sha) is not None, photo
        else:
            assert not (out / photo.stem / RECORD_NAME).exists()
    assert not [p for p in out.rglob("*") if ".part" in p.name]


def test_options_no_worker_could_use_fail_before_the_cluster_starts(inputs, weights, work: Path) -> None:
    done = _ray(inputs, work / "never", weights, "--device", "cuda", "--backend", "onnxruntime")
    assert done.returncode == 2
    assert done.stderr.strip() == "df2net: error: the onnxruntime backend runs on the CPU only, not on cuda"
    assert not (work / "never").exists()


def test_a_photo_that_kills_its_worker_fails_after_two_tries(random_weights, demo_files, tmp_path: Path) -> None:
    """Photos that crash their worker every time, in each stage, end as failed rows; the rest are done."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a_good.png", "crash_crop.png", "crash_net.png", "crash_write.png", "z_good.png"]
    for src, name in zip(demo_files, names):
        shutil.copyfile(src, folder / name)
    out = tmp_path / "out"
    crash = "crop:crash_crop.png,network:crash_net.png,write:crash_write.png"
    run = _ray([str(folder)], out, random_weights, env={**os.environ, CRASH_ENV: crash})
    assert run.returncode == 1, run.stderr[-3000:]
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    assert list(rows) == names
    assert rows["a_good.png"]["status"] == rows["z_good.png"]["status"] == "ok"
    work = {"crash_crop.png": "loading it and finding its faces", "crash_net.png": "running the network on its faces",
            "crash_write.png": "writing its files"}
    for name, what in work.items():
        assert rows[name]["status"] == "failed" and rows[name]["faces"] == 0
        assert rows[name]["error"] == (
            f"{folder / name}: its worker died 2 times while {what} (a crash, the memory killer or a lost node); "
            "not tried again"
        )
        assert not (out / Path(name).stem / RECORD_NAME).exists()
    assert "5 photo(s): 2 reconstructed, 0 already done, 3 failed" in run.stdout
    assert not [p for p in out.rglob("*") if ".part" in p.name or p.name.startswith(".ray-tries")]


def test_a_rerun_with_every_photo_done_starts_no_cluster(
    random_weights, demo_files, tmp_path: Path, monkeypatch, capsys
) -> None:
    from df2net.batch import ray_engine
    from df2net.batch.local import run_local
    from df2net.batch.options import ReconstructOptions

    photos = plan_photos([str(p) for p in demo_files[:2]])
    options = ReconstructOptions(weights=str(random_weights), formats=frozenset({"depth"}))
    out = tmp_path / "out"
    assert run_local(photos, out, options, progress=False).exit_status == 0

    def no_cluster(*args, **kwargs):
        raise AssertionError("a Ray cluster was started")

    monkeypatch.setattr(ray_engine, "_connect", no_cluster)
    summary = ray_engine.run_ray(photos, out, options, ray_engine.RayConfig(num_cpus=2))
    assert summary.exit_status == 0 and [r.reused for r in summary.results] == [True, True]
    assert "df2net: every photo is done already; no Ray cluster started" in capsys.readouterr().err
    assert [(r["status"], r["reused"]) for r in _rows(out)] == [("ok", True), ("ok", True)]

