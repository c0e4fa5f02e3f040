"""The textured mesh as Wavefront OBJ, with its material (``.mtl``) and texture (``.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from df2net.export.common import (
    MATERIAL,
    all_or_nothing,
    check_rgb,
    mesh_arrays,
    mesh_normals,
)
from df2net.export.png import png_bytes
from df2net.export.text_rows import format_rows
from df2net.io import atomic_path, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from df2net.geometry import Mesh


def write_obj(
    path: str | Path, mesh: Mesh, texture: np.ndarray | None, *, texture_png: bytes | None = None
) -> list[Path]:
    """Write a Wavefront OBJ with smooth normals, its material and its texture beside it.

    For ``DIR/name.obj`` this writes ``DIR/name.png`` (the texture), ``DIR/name.mtl`` (one
    material whose ``map_Kd`` names the PNG) and the OBJ (``mtllib name.mtl``, a ``vt`` per
    vertex from ``mesh.uv``); every reference is a bare file name, so the three files move
    together. The OBJ is written last, so its presence means the set is complete.

    With ``texture=None`` only the OBJ is written, with per-vertex colours (``v x y z r g b``)
    when ``mesh.colors`` is set.

    Args:
        path: the ``.obj`` file.
        mesh: the :class:`df2net.geometry.Mesh` (vertices in the conventions' frame).
        texture: ``(H, W, 3)`` uint8 RGB that ``mesh.uv`` indexes (the crop), or None.
        texture_png: ``texture`` encoded as PNG already (:func:`df2net.export.png.png_bytes`,
            say for the GLB too), written as it is.

    Returns:
        The files written, OBJ first.
    """
    path = Path(path)
    vertices, faces, uv = mesh_arrays(mesh)
    if texture is not None:
        texture = check_rgb("texture", texture)
    with all_or_nothing() as written:
        if texture is not None:
            png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
            with atomic_path(png) as tmp:
                tmp.write_bytes(texture_png if texture_png is not None else png_bytes(texture))
            written.append(png)
            write_text_atomic(
                mtl,
                "# df2net face material\n"
                f"newmtl {MATERIAL}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
                f"d 1.0\nillum 1\nmap_Kd {png.name}\n",
            )
            written.append(mtl)
        mtl_name = mtl.name if texture is not None else None
        write_text_atomic(path, _obj_text(mesh, vertices, faces, uv, mtl_name))
    return [path, *written[::-1]]


def _obj_text(
    mesh: Mesh, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, mtl_name: str | None
) -> str:
    """The OBJ file's text; textured (``vt``, ``usemtl``) when ``mtl_name`` is given."""
    textured = mtl_name is not None
    normals = mesh_normals(mesh, vertices, faces)
    lines = ["# df2net face mesh: X right, Y up, Z toward the viewer; units: crop pixels"]
    if textured:
        lines.append(f"mtllib {mtl_name}")
    lines.append("o face")
    text = [("\n".join(lines) + "\n")]

    colors = getattr(mesh, "colors", None)
    if not textured and colors is not None:
        vc = np.concatenate([vertices, np.asarray(colors, np.float64) / 255.0], axis=1)
        text.append(format_rows("v %.5f %.5f %.5f %.4f %.4f %.4f\n", vc))
    else:
        text.append(format_rows("v %.5f %.5f %.5f\n", vertices))
    if textured:
        text.append(format_rows("vt %.6f %.6f\n", uv))
    text.append(format_rows("vn %.5f %.5f %.5f\n", normals))
    if textured:
        text.append(f"usemtl {MATERIAL}\n")
    f1 = faces + 1  # OBJ indices are 1-based; v, vt and vn share them
    if textured:
        text.append(format_rows("f %d/%d/%d %d/%d/%d %d/%d/%d\n", np.repeat(f1, 3, axis=1)))
    else:
        text.append(format_rows("f %d//%d %d//%d %d//%d\n", np.repeat(f1, 2, axis=1)))
    return "".join(text)
