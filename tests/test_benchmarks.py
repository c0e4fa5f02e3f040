"""The benchmarks run by hand must keep up with the code they time.

``benchmarks/speed.py`` calls the writers one by one to time each file; when the writers' interface
moved (they began sharing the encoded texture) its loop broke and nothing noticed until a run by
hand. Here its whole-path step runs once on the sample photo and writes the same files as
``FaceResult.save``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_speed():
    spec = importlib.util.spec_from_file_location("df2net_bench_speed", REPO_ROOT / "benchmarks" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_speed_run_path_times_every_step_and_writes_every_file(tmp_path, sample_photo, face_detector):
    from df2net.backends import make_backend
    from df2net.model.weights import load_model
    from df2net.outputs import ALL_FORMATS
    from df2net.reconstruct import Reconstructor

    speed = _load_speed()
    loaded = load_model(None)
    backend = make_backend(loaded, "torch")
    times, faces = speed.run_path(backend, loaded.config, face_detector, sample_photo, tmp_path / "bench")
    assert faces == 1
    assert set(times) == set(speed.PATH_STEPS) | {"total"}
    assert all(t >= 0 for t in times.values()) and times["network"] > 0
    assert times["total"] == pytest.approx(sum(times[s] for s in speed.PATH_STEPS))

    written = sorted(p.name for p in (tmp_path / "bench" / "face0").iterdir())
    face = Reconstructor(backend="torch")(sample_photo)[0]
    saved = sorted(p.name for p in face.save(tmp_path / "saved", formats=set(ALL_FORMATS)))
    assert written == saved
