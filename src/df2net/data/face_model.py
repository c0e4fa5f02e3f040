"""The face worlds make-data draws from, behind one small interface (:class:`FaceModel`).

- ``"ict"`` (default): the ICT Face Model Light (:mod:`df2net.data.ict`): 100 identity modes
  from light-stage scans, 57 expression blendshapes, mouth interior and eyes.
- ``"sfm"``: the Surrey Face Model (:mod:`df2net.data.sfm`): 63 shape modes, 6 expressions,
  the face surface only (the world of the sets made before the ICT model).

Both give vertices in millimetres in the same frame, triangles, per-vertex texture coordinates
in one UV layout (the SFM's: ``atlas``), the landmarks' vertices and a Loop subdivision; the
renderer, the relief and marks painters and the dataset writer do not care which one feeds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from df2net.data.sfm import SurreyModel, Subdivision

if TYPE_CHECKING:
    from df2net.data.synthetic import SyntheticConfig

__all__ = ["FACE_MODELS", "DEFAULT_FACE_MODEL", "FaceModel", "load_face_model"]

FACE_MODELS = ("ict", "sfm")
DEFAULT_FACE_MODEL = "ict"


class FaceModel(Protocol):
    """What a face world offers make-data."""

    name: str
    mean: np.ndarray
    expression_names: list[str]
    triangles: np.ndarray
    uv: np.ndarray
    landmark_vertices: dict[int, int]
    #: ``(N, 3)`` unit direction of each eyeball vertex from its eyeball's centre (None: no eyes).
    eyeball_dir: np.ndarray | None

    @property
    def n_shape(self) -> int: ...

    @property
    def n_expression(self) -> int: ...

    @property
    def atlas(self) -> SurreyModel: ...

    def vertices(self, shape_coeffs: np.ndarray | None = None, expression_coeffs: np.ndarray | None = None) -> np.ndarray: ...

    def landmark_array(self) -> tuple[np.ndarray, np.ndarray]: ...

    def subdivision(self, levels: int = 1) -> Subdivision: ...

    def model_files(self) -> dict[str, str | None]:
        """Where the model was loaded from, as a dataset's manifest records it (``sfm_dir``, ``ict_model``)."""
        ...

    def triangle_regions(self, triangles: np.ndarray) -> np.ndarray:
        """:class:`df2net.data.ict.Region` code (int8) of each of the model's ``triangles`` (indices)."""
        ...

    def draw_expression(self, rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[np.ndarray, dict[str, float], dict[str, float]]:
        """A random expression of a synthetic face: ``(weights, weights by name, emotion weights for the relief)``."""
        ...

    def draw_appearance(self, rng: np.random.Generator) -> dict[str, Any]:
        """The synthetic appearance only this world has (drawn after the shared one)."""
        ...

    def fit_landmarks(self, landmarks: np.ndarray, width: int, height: int) -> Any:
        """Fit the model to a photo's 68 landmarks ``(u, v)`` of a ``width x height`` image."""
        ...

    def pull_texture(self, rgb: np.ndarray, fit: Any, resolution: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """``(colour (R, R, 3) uint8, seen (R, R) bool, texture-space raster)`` of a fitted photo."""
        ...


def load_face_model(name: str = DEFAULT_FACE_MODEL, sfm_dir: str | Path | None = None, ict_path: str | Path | None = None) -> FaceModel:
    """The face world ``name`` (``"ict"`` or ``"sfm"``), loaded once per process.

    The ICT model needs the SFM too (its UV atlas).

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the model files are missing.
    """
    from df2net.data.sfm import load_sfm

    if name == "sfm":
        return load_sfm(sfm_dir)
    if name == "ict":
        from df2net.data.ict import load_ict

        return load_ict(ict_path, sfm_dir)
    raise ValueError(f"face model must be one of {FACE_MODELS}, got {name!r}")
