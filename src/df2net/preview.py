"""A quick look at a reconstruction: the mesh shaded as gray clay, beside the crop.

Rendering is orthographic with :func:`df2net.render.rasterize`; shading is Lambertian plus
ambient with smooth per-pixel normals (vertex normals interpolated over each triangle). Light
directions are given in the view frame: X right, Y up, Z toward the viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from df2net.render import rasterize, render_grid_normals, render_normals, vertex_normals

if TYPE_CHECKING:  # pragma: no cover
    from df2net.geometry import Mesh

__all__ = ["FRONT_LIGHT", "SIDE_LIGHT", "SIDE_VIEW_DEGREES", "make_preview", "render_shaded", "write_preview"]

#: Light of the front panel (view frame): from the front, a little above and to the left.
FRONT_LIGHT: tuple[float, float, float] = (-0.3, 0.4, 1.0)
#: The second panel's turn about the vertical axis, degrees (positive turns the face to its left,
#: the image's right).
SIDE_VIEW_DEGREES: float = 45.0
#: Light of the turned panel (view frame): raking from the side, so relief shows.
SIDE_LIGHT: tuple[float, float, float] = (1.0, 0.35, 0.45)

#: Clay albedo (linear RGB), ambient share of the light, and the background colour.
_CLAY = np.array([0.80, 0.80, 0.78])
_AMBIENT = 0.22
_BACKGROUND = (255, 255, 255)
#: Free border around the mesh, as a fraction of the frame side.
_MARGIN = 0.05


def render_shaded(
    mesh: Mesh,
    size: int,
    light_dir: tuple[float, float, float] | np.ndarray,
    view_rotation: float | None = None,
    *,
    margin: float = _MARGIN,
    normals: np.ndarray | None = None,
) -> np.ndarray:
    """Render ``mesh`` as gray clay on white, orthographic, into a ``size`` x ``size`` frame.

    The mesh turns by ``view_rotation`` degrees about the vertical axis through the centre of its
    bounding box (positive: its +Z side turns toward +X, the image's right). It is scaled to fit
    the frame with ``margin`` to spare by its bounding cylinder about that axis, so every turn of
    one mesh gets the same scale and stays inside the frame.

    Args:
        mesh: a :class:`df2net.geometry.Mesh` in the conventions' frame (X right, Y up, Z out).
        size: side of the square image in pixels.
        light_dir: direction *toward* the light in the view frame (X right, Y up, Z toward the
            viewer); need not be unit length.
        view_rotation: degrees about the vertical axis; None or 0 for the front view.
        margin: free border on each side, as a fraction of ``size``.
        normals: ``(N, 3)`` unit vertex normals of ``mesh`` in its own frame (they turn with
            it), when the caller has them; default :func:`df2net.render.vertex_normals`.

    Returns:
        ``(size, size, 3)`` uint8 RGB. Each pixel is ``albedo * (ambient + (1 - ambient) *
        max(0, n . l))``; the background is white.
    """
    image = np.empty((size, size, 3), np.uint8)
    image[:] = _BACKGROUND
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    if len(vertices) == 0 or len(faces) == 0:
        return image

    referenced = np.zeros(len(vertices), bool)
    referenced[faces.ravel()] = True  # a boolean index: np.unique would sort 3M indices
    used = vertices[referenced]
    # Column by column: numpy reduces a short last axis slowly.
    centre = np.array([(used[:, k].min() + used[:, k].max()) / 2.0 for k in range(3)])
    if normals is None:
        normals = vertex_normals(vertices, faces)
    p = vertices - centre
    if view_rotation:
        p = _turn(p, view_rotation)
        normals = _turn(normals, view_rotation)
    q = used - centre
    radius = max(float(np.sqrt(q[:, 0] ** 2 + q[:, 2] ** 2).max()), float(np.abs(q[:, 1]).max()), 1e-9)
    scale = (size / 2.0) * (1.0 - 2.0 * margin) / radius

    half = (size - 1) / 2.0
    screen = np.empty_like(p)
    screen[:, 0] = half + p[:, 0] * scale
    screen[:, 1] = half - p[:, 1] * scale
    screen[:, 2] = p[:, 2] * scale
    grid = getattr(mesh, "grid", None)
    drawn = None if grid is None else render_grid_normals(screen, grid, normals, size, size)
    if drawn is None:  # any mesh: the general rasterizer
        raster = rasterize(screen, faces, size, size)
        drawn = render_normals(screen, faces, raster, normals=normals), raster.mask
    pixel_normals, covered = drawn

    light = np.asarray(light_dir, dtype=np.float64)
    light = light / max(float(np.linalg.norm(light)), 1e-12)
    # Over the whole frame (cheaper than gathering the covered pixels), then kept where covered.
    lambert = np.clip(pixel_normals @ light.astype(np.float32), 0.0, 1.0)
    intensity = _AMBIENT + (1.0 - _AMBIENT) * lambert
    clay = _CLAY.astype(np.float32)
    shaded = np.rint(np.clip(intensity[..., None] * clay, 0.0, 1.0) * 255.0).astype(np.uint8)
    np.copyto(image, shaded, where=covered[..., None])
    return image


def _turn(p: np.ndarray, degrees: float) -> np.ndarray:
    """Points or vectors ``(N, 3)`` turned by ``degrees`` about the Y axis (+Z toward +X)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    out = np.array(p, dtype=np.float64, copy=True)
    x, z = out[:, 0].copy(), out[:, 2].copy()
    out[:, 0], out[:, 2] = c * x + s * z, -s * x + c * z
    return out


def make_preview(crop_rgb: np.ndarray, mesh: Mesh, *, labels: bool = True) -> np.ndarray:
    """Three panels side by side: the mesh lit from the front, turned 45 degrees and lit from
    the side, and the crop.

    Args:
        crop_rgb: ``(S, S, 3)`` uint8 crop (a non-square one is resized to ``S x S``, ``S`` its
            height).
        mesh: the face mesh in the conventions' frame.
        labels: write a small caption in each panel's corner (Pillow's built-in font).

    Returns:
        ``(S, 3 * S, 3)`` uint8 RGB.
    """
    crop = np.asarray(crop_rgb)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ValueError(f"crop_rgb must be (H, W, 3) uint8, got {crop.shape} {crop.dtype}")
    size = crop.shape[0]
    if crop.shape[1] != size:
        crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))
    # Once for both views (they turn with the mesh); a mesh that keeps them shares them.
    kept = getattr(mesh, "smooth_normals", None)
    normals = kept() if callable(kept) else vertex_normals(mesh.vertices, mesh.faces)
    front = render_shaded(mesh, size, FRONT_LIGHT, normals=normals)
    side = render_shaded(mesh, size, SIDE_LIGHT, view_rotation=SIDE_VIEW_DEGREES, normals=normals)
    panels = np.concatenate([front, side, crop], axis=1)
    if labels:
        panels = _label(panels, size, ("front", f"turned {SIDE_VIEW_DEGREES:g} deg", "crop"))
    return panels


def write_preview(path: str | Path, crop_rgb: np.ndarray, mesh: Mesh, *, labels: bool = True) -> None:
    """Write :func:`make_preview` of ``crop_rgb`` and ``mesh`` as a PNG at ``path``."""
    from df2net.export import write_rgb_png

    write_rgb_png(path, make_preview(crop_rgb, mesh, labels=labels))


def _label(panels: np.ndarray, size: int, captions: tuple[str, ...]) -> np.ndarray:
    """Write each caption in the bottom-left corner of its panel, on a pale box.

    Only the strip of rows the boxes reach goes through Pillow (a copy of the whole picture
    costs more than the drawing).
    """
    font_size = max(10, size // 32)
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(font_size)
    except (TypeError, OSError):  # Pillow built without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    pad = max(2, font_size // 4)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    placed = []
    for i, text in enumerate(captions):
        left, top, right, bottom = measure.textbbox((0, 0), text, font=font)
        x = i * size + pad * 2
        y = size - (bottom - top) - pad * 3
        box = (x - pad, y - pad, x + right - left + pad, y + bottom - top + pad)
        placed.append((text, box, (x - left, y - top)))
    first_row = max(0, min(box[1] for _, box, _ in placed) - 1)
    strip = Image.fromarray(np.ascontiguousarray(panels[first_row:]))
    draw = ImageDraw.Draw(strip)
    for text, box, (tx, ty) in placed:
        draw.rectangle((box[0], box[1] - first_row, box[2], box[3] - first_row), fill=(240, 240, 240))
        draw.text((tx, ty - first_row), text, fill=(40, 40, 40), font=font)
    out = panels.copy()
    out[first_row:] = np.asarray(strip)
    return out
