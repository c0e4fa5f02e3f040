"""dlib's model files (from the ``face-recognition-models`` package), found and loaded once."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

from df2net.errors import Df2netError

#: File names of dlib's models inside the face-recognition-models package.
LANDMARK_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"
CNN_MODEL_NAME = "mmod_human_face_detector.dat"


def model_path(name: str) -> Path:
    """Path of one of dlib's models shipped by the ``face-recognition-models`` package.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``).

    Raises:
        Df2netError: the package or the model file is missing.
    """
    hint = "install it with: pip install face-recognition-models"
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise Df2netError(f"face model {name} not found: package face-recognition-models is missing; {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise Df2netError(f"face model not found at {path}; {hint}")
    return path


def landmark_model_path() -> Path:
    """Path of dlib's 68-landmark model (see :func:`model_path`)."""
    try:
        return model_path(LANDMARK_MODEL_NAME)
    except Df2netError as exc:
        raise Df2netError(str(exc).replace("face model", "face landmark model", 1)) from None


#: The dlib models df2net loads, by kind: (dlib's loader's name, what the error calls it).
_DLIB_MODELS = {
    "landmarks": ("shape_predictor", "face landmark model"),
    "cnn": ("cnn_face_detection_model_v1", "face detector model"),
}


@functools.lru_cache(maxsize=4)
def load_dlib_model(kind: str, path: str) -> Any:
    """dlib's ``"landmarks"`` predictor or ``"cnn"`` face detector from ``path``, loaded once per
    process.

    Raises:
        Df2netError: dlib cannot load the file.
    """
    import dlib  # local: importing df2net must not pay for dlib

    loader, what = _DLIB_MODELS[kind]
    try:
        return getattr(dlib, loader)(path)
    except RuntimeError as exc:
        raise Df2netError(f"cannot load {what} {path}: {exc}") from None
