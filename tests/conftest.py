"""Shared test fixtures: the demo photos beside the checkout and a loaded face detector."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

#: The repository root (this file is ``<root>/tests/conftest.py``).
REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` loaded as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_truth_sample(folder: Path, depth: np.ndarray, mask: np.ndarray) -> None:
    """A minimal evaluation render in ``folder``: its true depth, mask, a grey image and landmarks."""
    from PIL import Image

    folder.mkdir(parents=True)
    np.save(folder / "depth.npy", depth.astype(np.float32))
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "mask.png")
    Image.fromarray(np.full(depth.shape + (3,), 128, np.uint8)).save(folder / "image.png")
    (folder / "landmarks.json").write_text(json.dumps({"crop": [[0.0, 0.0]] * 68}))


#: ``../shared/data/df2net_demo`` beside the checkout: the 25 demo photos of DF2Net.
DEMO_DIR = (REPO_ROOT / ".." / "shared" / "data" / "df2net_demo").resolve()


def _demo_files() -> list[Path]:
    if not DEMO_DIR.is_dir():
        return []
    return sorted(DEMO_DIR.glob("*.png"), key=lambda p: (len(p.stem), p.stem))


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The demo photo folder; the test is skipped where ``../shared`` is absent."""
    if not _demo_files():
        pytest.skip(f"demo photos not found at {DEMO_DIR}")
    return DEMO_DIR


@pytest.fixture(scope="session")
def demo_files(demo_dir: Path) -> list[Path]:
    """The demo photos, in numeric order (1.png, 2.png, ..., 26.png)."""
    return _demo_files()


@pytest.fixture(scope="session")
def demo_images(demo_files: list[Path]) -> dict[str, np.ndarray]:
    """Every demo photo decoded once per session: ``{file name: (H, W, 3) uint8}``."""
    from df2net.io import load_image

    return {p.name: load_image(p).rgb for p in demo_files}


@pytest.fixture(scope="session")
def face_detector():
    """The default :class:`df2net.face.FaceDetector`; skipped if dlib or its model is missing."""
    pytest.importorskip("dlib")
    from df2net.errors import Df2netError
    from df2net.face import default_detector

    try:
        return default_detector()
    except Df2netError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def demo_detections(demo_images, face_detector):
    """``{file name: Detections}`` for every demo photo, computed once per session."""
    return {name: face_detector.detect(rgb) for name, rgb in demo_images.items()}


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """Weights of the light "cpu" configuration with a fixed random initialisation.

    For tests of the plumbing (shapes, files, errors) that must not depend on training.
    """
    import torch

    from df2net.model.df2net import build_model
    from df2net.model.weights import save_weights

    torch.manual_seed(0)
    model = build_model("cpu").eval()
    path = tmp_path_factory.mktemp("weights") / "random_cpu.safetensors"
    save_weights(model, model.config, path, recipe={"note": "random initialisation, for tests"})
    return path


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    """The sample photo bundled with the package."""
    return REPO_ROOT / "src" / "df2net" / "samples" / "astronaut.png"
