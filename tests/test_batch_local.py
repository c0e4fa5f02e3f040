"""The local engine of ``df2net reconstruct``: @list inputs, the results table, resuming a run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from df2net.batch.faults import FAULT_ENV
from df2net.batch.inputs import plan_photos, unique_stems
from df2net.batch.records import RECORD_NAME, completed_record
from df2net.batch.results import RESULTS_NAME, TIMING_COLUMNS
from df2net.cli import main

FORMATS = "depth,metadata"


def _weights_sha(weights: Path) -> str:
    from df2net.model.weights import load_weights

    return str(load_weights(weights).metadata["sha256"])


def _table(out: Path) -> list[dict]:
    return pq.read_table(out / RESULTS_NAME).to_pylist()


def _files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time (ns)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture()
def one_photo(tmp_path: Path, demo_files: list[Path]) -> Path:
    """A list naming one demo photo, for the tests that run df2net in a subprocess."""
    listing = tmp_path / "one.txt"
    listing.write_text(f"{demo_files[0]}\n")
    return listing


@pytest.fixture()
def inputs(tmp_path: Path, sample_photo: Path, demo_files: list[Path]) -> dict[str, Path]:
    """A folder with a good photo and two bad files, and a list naming two more photos."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.jpg").write_text("this is not an image")
    Image.new("RGB", (200, 200), (90, 120, 150)).save(folder / "wall.png")
    (folder / "astronaut.png").write_bytes(sample_photo.read_bytes())
    listing = tmp_path / "photos.txt"
    astronaut = folder / "astronaut.png"
    lines = ["# two demo photos", str(demo_files[0]), "", f"  {demo_files[1]}  ", str(astronaut)]
    listing.write_text("\n".join(lines) + "\n")
    return {"folder": folder, "list": listing}


def test_list_file_folders_and_results_table(inputs, random_weights, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["reconstruct", str(inputs["folder"]), f"@{inputs['list']}", "-o", str(out),
                 "--weights", str(random_weights), "--formats", FORMATS, "-q"])
    captured = capsys.readouterr()
    assert code == 1
    rows = _table(out)
    # Folder files sorted by name, then the list's entries; the astronaut named twice is one photo.
    names = ["astronaut.png", "notes.jpg", "wall.png", "1.png", "2.png"]
    assert [Path(r["path"]).name for r in rows] == names
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["notes.jpg"]["status"] == "failed"
    assert by_name["notes.jpg"]["error"].endswith("notes.jpg: not an image (unrecognised file format)")
    assert by_name["wall.png"]["error"].endswith("wall.png: no face found")
    sha = _weights_sha(random_weights)
    for name in ("astronaut.png", "1.png", "2.png"):
        row = by_name[name]
        assert row["status"] == "ok" and row["error"] is None and row["faces"] == 1 and not row["reused"]
        assert row["weights_sha256"] == sha
        assert all(row[k] is not None and row[k] >= 0 for k in TIMING_COLUMNS)
        assert (out / row["folder"] / "face0" / "depth.npy").is_file()
    assert "5 photo(s): 3 reconstructed, 0 already done, 2 failed; 3 face(s)" in captured.out
    assert "Traceback" not in captured.err


def test_rerun_skips_complete_photos_and_redoes_the_rest(inputs, random_weights, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["reconstruct", f"@{inputs['list']}", "-o", str(out), "--weights", str(random_weights),
            "--formats", FORMATS, "-q"]
    assert main(args) == 0
    before = _files(out / "1")
    (out / "2" / "face0" / "depth.npy").unlink()  # photo 2: a file is missing
    with open(out / "astronaut" / "face0" / "metadata.json", "a") as fh:  # astronaut: a file changed
        fh.write(" ")
    leftover = out / "astronaut" / ".face0.abc123.part"  # what a writer killed mid-face leaves
    leftover.mkdir()
    (out / "astronaut" / "face3").mkdir()  # a face folder no run of this photo should have

    assert main(args) == 0
    rows = {Path(r["path"]).name: r for r in _table(out)}
    assert [rows[n]["reused"] for n in ("1.png", "2.png", "astronaut.png")] == [True, False, False]
    assert all(r["status"] == "ok" for r in rows.values())
    assert _files(out / "1") == before  # the finished photo was not touched
    assert not leftover.exists() and not (out / "astronaut" / "face3").exists()
    sha = _weights_sha(random_weights)
    for photo in plan_photos([f"@{inputs['list']}"]):
        assert completed_record(out, photo, frozenset(FORMATS.split(",")), sha) is not None

    # Asking for more formats than were written redoes the photos; fewer keeps them.
    assert main(args[:-3] + ["--formats", "depth", "-q"]) == 0
    assert all(r["reused"] for r in _table(out))
    assert main(args[:-3] + ["--formats", "depth,metadata,normals", "-q"]) == 0
    assert not any(r["reused"] for r in _table(out))
    assert (out / "1" / "face0" / "normals.png").is_file()


def test_a_killed_run_resumes_without_half_written_photos(one_photo, random_weights, tmp_path: Path) -> None:
    out = tmp_path / "out"
    kill_dir = tmp_path / "kill"
    kill_dir.mkdir()
    cmd = [sys.executable, "-m", "df2net", "reconstruct", f"@{one_photo}", "-o", str(out),
           "--weights", str(random_weights), "--formats", FORMATS, "-q"]
    env = {**os.environ, FAULT_ENV: str(kill_dir)}
    died = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert died.returncode == 70, died.stderr  # killed after the photo's face, before its record
    assert (kill_dir / "write").exists()
    first = out / "1"
    assert (first / "face0" / "depth.npy").is_file() and not (first / RECORD_NAME).exists()
    assert not (out / RESULTS_NAME).exists()

    again = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    rows = _table(out)
    assert [(r["status"], r["reused"]) for r in rows] == [("ok", False)]  # redone, not taken as done
    assert not [p for p in out.rglob("*") if ".part" in p.name]


def test_the_local_engine_never_imports_ray(one_photo, random_weights, tmp_path: Path) -> None:
    script = (
        "import sys\nfrom df2net.cli import main\n"
        f"code = main(['reconstruct', '@{one_photo}', '-o', '{tmp_path / 'out'}', '--weights', "
        f"'{random_weights}', '--formats', 'depth', '-q'])\n"
        "print(code, 'ray' in sys.modules, sorted(m for m in sys.modules if m.startswith('ray.'))[:3])\n"
    )
    cmd = [sys.executable, "-c", script]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 False []"


def test_bad_list_file_and_engine_options_are_one_line_errors(tmp_path: Path, capsys, monkeypatch) -> None:
    out = str(tmp_path / "out")
    assert main(["reconstruct", f"@{tmp_path / 'missing.txt'}", "-o", out]) == 2
    assert f"{tmp_path / 'missing.txt'}: list file not found" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path), "-o", out, "--workers", "2"]) == 2
    assert "--workers only apply to --engine ray" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path), "-o", out, "--batch-faces", "0"]) == 2
    assert "batch_faces must be at least 1" in capsys.readouterr().err
    find_spec = importlib.util.find_spec
    without_ray = lambda name, *rest: None if name == "ray" else find_spec(name, *rest)
    monkeypatch.setattr(importlib.util, "find_spec", without_ray)
    assert main(["reconstruct", str(tmp_path), "-o", out, "--engine", "ray"]) == 2
    assert "--engine ray needs Ray: pip install 'df2net[cluster]'" in capsys.readouterr().err


def test_unique_stems_and_planned_photos(tmp_path: Path) -> None:
    files = [Path("a/x.png"), Path("b/x.png"), Path("c/y.jpg"), Path("d/x.jpeg")]
    assert list(unique_stems(files).values()) == ["x", "x-2", "y", "x-3"]
    listing = tmp_path / "list.txt"
    listing.write_text("a/x.png\n# comment\n./a/x.png\nb/x.png\n")
    photos = plan_photos([f"@{listing}", "c/y.jpg"])
    expected = [("a/x.png", "x", 0), ("b/x.png", "x-2", 1), ("c/y.jpg", "y", 2)]
    assert [(p.path, p.stem, p.order) for p in photos] == expected
    assert photos[0].absolute == str(Path("a/x.png").absolute())


def test_options_pass_further_reconstructor_arguments_to_every_worker(monkeypatch) -> None:
    import df2net.reconstruct
    from df2net.batch.options import ReconstructOptions

    built: list[dict] = []
    monkeypatch.setattr(df2net.reconstruct, "Reconstructor", lambda **kwargs: built.append(kwargs))
    options = ReconstructOptions(weights="w.safetensors", device="cuda", batch_faces=8,
                                 reconstructor_kwargs={"min_face_size": 90, "detector": "hog"})
    options.build()  # a network worker
    options.for_detection()  # a crop worker: the same options, its network on the CPU
    common = {"weights": "w.safetensors", "max_batch": 8, "min_face_size": 90, "detector": "hog"}
    assert built == [
        {**common, "device": "cuda", "backend": "auto"},
        {**common, "device": "cpu", "backend": "torch"},
    ]


def test_a_network_failure_fails_only_its_photo(demo_files, random_weights, tmp_path: Path, monkeypatch) -> None:
    """Faces of several photos share a network batch; when the batch fails, each photo is tried
    alone and only the one that fails alone is a failed row."""
    import df2net.reconstruct
    from df2net.batch.local import run_local
    from df2net.batch.options import ReconstructOptions
    from df2net.errors import Df2netError

    real = df2net.reconstruct.Reconstructor.reconstruct_faces
    batches: list[list[str]] = []

    def breaks_on_photo_2(self, faces):
        names = [Path(source).name for _, _, source, _ in faces]
        batches.append(names)
        if "2.png" in names:
            raise Df2netError("2.png: the network broke")
        return real(self, faces)

    monkeypatch.setattr(df2net.reconstruct.Reconstructor, "reconstruct_faces", breaks_on_photo_2)
    photos = plan_photos([str(p) for p in demo_files[:4]])
    options = ReconstructOptions(weights=str(random_weights), formats=frozenset({"depth"}), batch_faces=4)
    summary = run_local(photos, tmp_path / "out", options, progress=False)
    assert [Path(r.path).name for r in summary.results] == ["1.png", "2.png", "3.png", "4.png"]
    status = {Path(r.path).name: (r.status, r.error) for r in summary.results}
    assert status["2.png"] == ("failed", "2.png: the network broke")
    assert all(status[n] == ("ok", None) for n in ("1.png", "3.png", "4.png"))
    assert not (tmp_path / "out" / "2" / RECORD_NAME).exists()
    assert all((tmp_path / "out" / n / "face0" / "depth.npy").is_file() for n in ("1", "3", "4"))
    assert sum("2.png" in b for b in batches) >= 1 and all(len(b) <= 4 for b in batches)
