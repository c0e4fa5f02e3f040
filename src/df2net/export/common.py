"""What the writers share: all-or-nothing sets of files, argument checks.

Also the mesh helpers of the two mesh writers (:mod:`df2net.export.obj`,
:mod:`df2net.export.glb`): checked mesh arrays, smooth normals and the material's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from df2net.geometry import Mesh

#: Name of the one material of exported meshes.
MATERIAL: str = "face"


@contextlib.contextmanager
def all_or_nothing() -> Iterator[list[Path]]:
    """Collect the files a multi-file writer has finished; delete them if a later one fails."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for p in written:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        raise


def mesh_arrays(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices (N, 3) float64, faces (M, 3) int64, uv (N, 2) float64)``, checked."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    uv = np.asarray(mesh.uv, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"mesh.vertices must be (N, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"mesh.faces must be (M, 3), got {faces.shape}")
    if uv.shape != (len(vertices), 2):
        raise ValueError(f"mesh.uv must be ({len(vertices)}, 2), got {uv.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError("mesh.faces index vertices that do not exist")
    return vertices, faces, uv


def smooth_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (CCW winding = the side they face), ``(N, 3)``."""
    from df2net.render import vertex_normals

    return vertex_normals(vertices, faces)


def mesh_normals(mesh: Mesh, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """:func:`smooth_normals` of a mesh (its checked ``vertices`` and ``faces``); a mesh that
    keeps its own (:meth:`df2net.geometry.Mesh.smooth_normals`) is asked for them, so the
    writers of one mesh compute them once."""
    kept = getattr(mesh, "smooth_normals", None)
    return kept() if callable(kept) else smooth_normals(vertices, faces)


def check_2d(name: str, array: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``array`` is ``(H, W)``."""
    if array.ndim != 2:
        raise ValueError(f"{name} must be (H, W), got {array.shape}")


def check_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` as a bool array; ``ValueError`` unless it has ``shape``."""
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask must be {tuple(shape)}, got {mask.shape}")
    return mask.astype(bool)


def check_rgb(name: str, rgb: np.ndarray) -> np.ndarray:
    """``rgb`` C-contiguous; ``ValueError`` unless it is ``(H, W, 3)`` uint8."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{name} must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    return np.ascontiguousarray(rgb)
