"""The weights shipped in the package: present, loadable without pickle, and giving the stored
reference depth for the bundled sample photo (a golden test against silent changes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from df2net.model.weights import default_weights_path, load_weights

REFERENCE = Path(__file__).parent / "fixtures" / "astronaut_reference_depth.npz"


@pytest.fixture(scope="module")
def shipped() -> Path:
    path = default_weights_path()
    assert path is not None, "no weights shipped in src/df2net/weights/"
    return path


def test_shipped_weights_are_small_safetensors_with_a_recipe(shipped: Path) -> None:
    assert shipped.suffix == ".safetensors"
    assert shipped.stat().st_size < 30 * 2**20
    loaded = load_weights(shipped)
    assert loaded.config.input_size == 512
    assert loaded.metadata["recipe"], "the weights must say how they were trained"
    assert (shipped.parent / "MODEL_CARD.md").is_file()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_sample_photo_gives_the_reference_depth(shipped: Path, sample_photo: Path, backend: str) -> None:
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    from df2net import Reconstructor

    ref = np.load(REFERENCE)
    assert str(ref["weights_sha256"]) == load_weights(shipped).metadata["sha256"], (
        "the reference belongs to other weights: run scripts/make_golden.py"
    )
    face = Reconstructor(backend=backend)(sample_photo)[0]
    mask = ref["mask"]
    assert np.array_equal(face.mask[::8, ::8], mask)
    for stage in ("dense", "fine", "finer"):
        got = face.stages[stage][::8, ::8]
        want = ref[stage]
        span = float(want[mask].max() - want[mask].min())
        assert span > 20.0, f"{stage}: the reference face is flat"
        assert np.abs(got - want)[mask].max() <= 2e-3 * span, stage
