"""The ONNX Runtime path imports no PyTorch once the network is exported, and gives the same depth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

#: Run in a fresh interpreter: reconstruct with the default backend, every format, then name the
#: PyTorch modules that were imported. argv: photo, output folder, weights.
_RECONSTRUCT = """
import json, sys
from df2net.cli import main
from df2net.model.weights import read_weights

code = main(["reconstruct", sys.argv[1], "-o", sys.argv[2], "--weights", sys.argv[3], "-q", "--formats", "all"])
torch = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(json.dumps({"code": code, "torch": torch, "sha256": read_weights(sys.argv[3]).metadata["sha256"]}))
"""


def test_onnxruntime_path_imports_no_torch_and_gives_the_same_depth(
    random_weights: Path, sample_photo: Path, tmp_path: Path, monkeypatch
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("dlib")
    from df2net import Reconstructor

    cache = tmp_path / "cache"
    monkeypatch.setenv("DF2NET_CACHE_DIR", str(cache))
    # A path of this test's own: backends are cached per process and weights path, and another
    # test may already have built one for the shared weights (with its export elsewhere).
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(random_weights.read_bytes())
    # One thread each, in both processes: the same ONNX Runtime work, hence the same bits.
    reconstructor = Reconstructor(weights=weights, threads=1)  # exports the network once
    if reconstructor.backend.name != "onnxruntime":
        pytest.skip("the ONNX exporter's packages are missing: the auto backend is torch")
    assert Path(reconstructor.backend.source).parent == cache / "onnx"
    want = reconstructor(sample_photo)[0]

    env = {**os.environ, "DF2NET_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    args = [sys.executable, "-c", _RECONSTRUCT, str(sample_photo), str(out), str(weights)]
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert report["torch"] == []
    assert report["sha256"] == reconstructor.model_info["sha256"]  # read without PyTorch, same digest

    face = out / sample_photo.stem / "face0"
    written = {p.name for p in face.iterdir()}
    assert {"depth.npy", "mesh.glb", "mesh.obj", "points.ply", "preview.png", "metadata.json"} <= written
    got = np.load(face / "depth.npy")
    assert got.dtype == want.depth.dtype and np.array_equal(got, want.depth)
    meta = json.loads((face / "metadata.json").read_text())
    assert meta["model"] == want.model_info
    import torch

    assert meta["versions"]["torch"] == torch.__version__


def test_read_weights_is_what_load_weights_reads(random_weights: Path) -> None:
    from df2net.model.weights import load_weights, read_weights

    read, loaded = read_weights(random_weights), load_weights(random_weights)
    assert read.config == loaded.config and read.metadata == loaded.metadata and read.path == loaded.path
    assert "model" not in vars(read)  # not built until asked for
    built, want = read.model.state_dict(), loaded.model.state_dict()
    assert built.keys() == want.keys() and all(built[k].equal(want[k]) for k in want)
    assert not read.model.training


def test_read_weights_checks_the_digest_of_the_bytes(random_weights: Path, tmp_path: Path) -> None:
    from df2net.errors import WeightsError
    from df2net.model.weights import read_weights

    path = tmp_path / "w.safetensors"
    data = bytearray(random_weights.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"w\.safetensors: sha256"):
        read_weights(path)
    path.write_bytes(random_weights.read_bytes()[:-1])
    with pytest.raises(WeightsError, match=r"w\.safetensors: not a readable .*bad data offsets"):
        read_weights(path)
