"""Depth maps to normals, point clouds and meshes.

Every function follows ``docs/conventions.md``: depth is a height field in crop pixels (larger =
nearer), pixel ``(u, v)`` is the 3D point ``(X, Y, Z) = (u, -v, depth[v, u])`` (X right, Y up, Z
toward the viewer), and normals are unit ``(H, W, 3)`` vectors with ``n ∝ (-dZ/dX, -dZ/dY, 1)``,
``dZ/dY = -dZ/dv``. Derivatives never reach across the mask edge: where a neighbour is masked out
a one-sided difference is used, so the background does not bend the normals at the rim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import trimesh

# torch, trimesh and scipy are imported where they are used: importing them costs a second or
# more, and the inference path (normals, points, meshes, files) needs none of them.

__all__ = [
    "depth_to_normals",
    "depth_to_normals_torch",
    "normals_to_rgb",
    "rgb_to_normals",
    "depth_to_points",
    "Mesh",
    "depth_to_mesh",
    "smooth_depth",
]


# --------------------------------------------------------------------------- normals


def _masked_diff(z: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """``dz/d(axis)``: central where both neighbours are in ``m``, else one-sided, else 0."""
    n = z.shape[axis]

    def part(start: int, stop: int) -> tuple[slice, ...]:
        index = [slice(None)] * z.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    zp, zm = np.zeros_like(z), np.zeros_like(z)  # z at index + 1, at index - 1
    mp, mm = np.zeros_like(m), np.zeros_like(m)  # whether that neighbour is in the mask
    zp[part(0, n - 1)], mp[part(0, n - 1)] = z[part(1, n)], m[part(1, n)]
    zm[part(1, n)], mm[part(1, n)] = z[part(0, n - 1)], m[part(0, n - 1)]
    mp &= m
    mm &= m
    out = np.zeros_like(z)
    np.copyto(out, z - zm, where=mm)  # one-sided back, then forward, then central where both
    np.copyto(out, zp - z, where=mp)
    np.copyto(out, (zp - zm) * 0.5, where=mp & mm)
    return out


def depth_to_normals(depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Unit normals of a depth map, by central differences (one-sided at the mask edge).

    Args:
        depth: ``(H, W)`` depth in crop pixels (larger = nearer).
        mask: ``(H, W)`` bool, where the depth is valid; None means everywhere (the image border
            then gets one-sided differences).

    Returns:
        ``(H, W, 3)`` float32 unit normals ``(X right, Y up, Z toward viewer)``, 0 outside the
        mask.
    """
    z = np.asarray(depth, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {z.shape}")
    m = np.ones(z.shape, bool) if mask is None else np.asarray(mask, bool)
    z = np.where(m, z, 0.0)  # non-finite background never enters a difference
    dz_du = _masked_diff(z, m, axis=1)
    dz_dv = _masked_diff(z, m, axis=0)
    # dZ/dX = dz/du and dZ/dY = -dz/dv, so n is (-dz/du, dz/dv, 1) over its length, summed in
    # the order np.linalg.norm sums, component by component (reducing a last axis of 3 is slow).
    length = np.sqrt(dz_du * dz_du + dz_dv * dz_dv + 1.0)
    n = np.empty((*z.shape, 3), np.float32)
    n[..., 0] = -dz_du / length
    n[..., 1] = dz_dv / length
    n[..., 2] = 1.0 / length
    n[~m] = 0.0
    return n


def _masked_diff_torch(z: torch.Tensor, m: torch.Tensor, dim: int) -> torch.Tensor:
    """Torch twin of :func:`_masked_diff` along ``dim`` (-1 columns, -2 rows) of ``(B, 1, H, W)``."""
    import torch

    pad = (0, 0, 1, 1) if dim == -2 else (1, 1, 0, 0)
    zp_full = torch.nn.functional.pad(z, pad)
    mp_full = torch.nn.functional.pad(m, pad)
    n = z.shape[dim]
    zp, zm = zp_full.narrow(dim, 2, n), zp_full.narrow(dim, 0, n)
    mp, mm = mp_full.narrow(dim, 2, n) & m, mp_full.narrow(dim, 0, n) & m
    zero = torch.zeros_like(z)
    one_sided = torch.where(mp, zp - z, torch.where(mm, z - zm, zero))
    return torch.where(mp & mm, (zp - zm) * 0.5, one_sided)


def depth_to_normals_torch(depth: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable :func:`depth_to_normals` for batches: ``(B, 1, H, W) -> (B, 3, H, W)``.

    Args:
        depth: ``(B, 1, H, W)`` depth in crop pixels (larger = nearer).
        mask: ``(B, 1, H, W)`` (or broadcastable) bool; None means everywhere.

    Returns:
        ``(B, 3, H, W)`` unit normals, channels ``(X, Y, Z)``, 0 outside the mask.
    """
    import torch

    dz_du, dz_dv = depth_slopes_torch(depth, mask)
    n = torch.cat([-dz_du, dz_dv, torch.ones_like(dz_du)], dim=1)
    n = n / torch.linalg.vector_norm(n, dim=1, keepdim=True)
    m = torch.ones_like(depth, dtype=torch.bool) if mask is None else mask.bool().expand_as(depth)
    return n * m.to(n.dtype)


def depth_slopes_torch(depth: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The slopes ``dz/du`` and ``dz/dv`` of ``depth (B, 1, H, W)`` that :func:`depth_to_normals_torch`
    uses (central differences, one-sided at the mask's edge, 0 off it), each ``(B, 1, H, W)``."""
    import torch

    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be (B, 1, H, W), got {tuple(depth.shape)}")
    m = torch.ones_like(depth, dtype=torch.bool) if mask is None else mask.bool().expand_as(depth)
    z = torch.where(m, depth, torch.zeros_like(depth))
    return _masked_diff_torch(z, m, -1), _masked_diff_torch(z, m, -2)


def normals_to_rgb(normals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Encode normals as the normal-map PNG colours ``(n + 1) / 2 * 255``; background black.

    Args:
        normals: ``(H, W, 3)`` unit normals.
        mask: ``(H, W)`` bool; None uses pixels whose normal is non-zero.

    Returns:
        ``(H, W, 3)`` uint8 RGB (X red, Y green, Z blue).
    """
    n = np.asarray(normals, dtype=np.float64)
    m = np.any(n != 0, axis=-1) if mask is None else np.asarray(mask, bool)
    rgb = np.clip(np.rint((n + 1.0) * 0.5 * 255.0), 0, 255).astype(np.uint8)
    rgb[~m] = 0
    return rgb


def rgb_to_normals(rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Decode a normal-map image (inverse of :func:`normals_to_rgb`), renormalised.

    Args:
        rgb: ``(H, W, 3)`` uint8.
        mask: ``(H, W)`` bool; None treats black pixels as background.

    Returns:
        ``(H, W, 3)`` float32 unit normals, 0 on background.
    """
    c = np.asarray(rgb)
    m = np.any(c != 0, axis=-1) if mask is None else np.asarray(mask, bool)
    n = c.astype(np.float64) / 255.0 * 2.0 - 1.0
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)
    n[~m] = 0.0
    return n.astype(np.float32)


# --------------------------------------------------------------------------- points and meshes


def depth_to_points(
    depth: np.ndarray, mask: np.ndarray, image: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The 3D points ``(u, -v, depth)`` of the mask pixels, in row-major order.

    Args:
        depth: ``(H, W)`` depth in crop pixels.
        mask: ``(H, W)`` bool.
        image: optional ``(H, W, 3)`` uint8 colours.

    Returns:
        ``points`` ``(N, 3)`` float32 and ``colors`` ``(N, 3)`` uint8 (None without an image).
    """
    m = np.asarray(mask, bool)
    rows, cols = np.nonzero(m)
    z = np.asarray(depth)[rows, cols]
    points = np.stack([cols, -rows, z], axis=1).astype(np.float32)
    colors = None if image is None else np.asarray(image)[rows, cols, :3].astype(np.uint8)
    return points, colors


@dataclass
class Mesh:
    """A triangle mesh in the conventions' frame.

    Attributes:
        vertices: ``(N, 3)`` float32 ``(X, Y, Z) = (u, -v, depth)``.
        faces: ``(M, 3)`` int32, counter-clockwise seen from the viewer (+Z normals on a frontal
            face).
        uv: ``(N, 2)`` float32 texture coordinates in [0, 1]: ``u = col / (W - 1)``,
            ``v = 1 - row / (H - 1)`` (GL / OBJ convention, origin bottom-left).
        colors: ``(N, 3)`` uint8 vertex colours, or None.
        grid: ``(rows, cols)`` int64, the vertex at each point of the pixel grid the mesh was
            cut from (-1 where none), when every cell whose four corners are vertices is the
            two triangles :func:`depth_to_mesh` makes of it and there are no other faces; None
            otherwise. Renderers use it to walk the surface as a height field
            (:func:`df2net.render.render_grid_normals`).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    colors: np.ndarray | None = None
    grid: np.ndarray | None = field(default=None, repr=False)
    _smooth_normals: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def smooth_normals(self) -> np.ndarray:
        """``(N, 3)`` float32 area-weighted unit vertex normals (:func:`df2net.render.vertex_normals`),
        computed on first use and kept: the mesh writers and the preview share them. (Change
        ``vertices`` or ``faces`` in place after that and they are stale.)"""
        if self._smooth_normals is None:
            from df2net.render import vertex_normals

            self._smooth_normals = vertex_normals(self.vertices, self.faces)
        return self._smooth_normals

    def face_normals(self) -> np.ndarray:
        """``(M, 3)`` float32 unit face normals (right-hand rule on the winding)."""
        v = self.vertices.astype(np.float64)
        f = self.faces
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0).astype(np.float32)

    def to_trimesh(self, texture: np.ndarray | None = None) -> trimesh.Trimesh:
        """A :class:`trimesh.Trimesh` (not processed: vertex order is kept).

        Args:
            texture: optional ``(H, W, 3)`` uint8 image mapped by ``uv`` (a textured material);
                without it the vertex colours, if any, are used.
        """
        import trimesh

        if texture is not None:
            from PIL import Image

            tex = Image.fromarray(np.asarray(texture, np.uint8))
            material = trimesh.visual.material.SimpleMaterial(image=tex)
            visual: trimesh.visual.base.Visuals | None = trimesh.visual.TextureVisuals(
                uv=self.uv, material=material
            )
        elif self.colors is not None:
            visual = trimesh.visual.ColorVisuals(vertex_colors=self.colors)
        else:
            visual = None
        return trimesh.Trimesh(vertices=self.vertices, faces=self.faces, visual=visual, process=False)


def depth_to_mesh(
    depth: np.ndarray,
    mask: np.ndarray,
    image: np.ndarray | None = None,
    step: int = 1,
    max_edge_jump: float | None = None,
    largest_component: bool = False,
    keep_unused: bool = False,
) -> Mesh:
    """Triangulate the mask pixels of a depth map on a grid of ``step`` pixels.

    Each grid cell whose four corners are all in the mask becomes two triangles (split along the
    top-left to bottom-right diagonal), so no triangle spans the mask edge.

    Args:
        depth: ``(H, W)`` depth in crop pixels.
        mask: ``(H, W)`` bool.
        image: optional ``(H, W, 3)`` uint8, sampled into vertex colours.
        step: grid spacing in pixels (rows and columns ``0, step, 2 step, ...``).
        max_edge_jump: drop triangles with an edge whose depth difference exceeds this (crop
            pixels); None keeps all.
        largest_component: keep only the connected component with the most triangles.
        keep_unused: keep vertices no triangle uses (then there is exactly one vertex per mask
            pixel of the grid).

    Returns:
        A :class:`Mesh`; vertices in row-major order of their pixels.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    z = np.asarray(depth, dtype=np.float32)
    m = np.asarray(mask, bool) & np.isfinite(z)
    h, w = z.shape
    gm = m[::step, ::step]
    gh, gw = gm.shape
    index = np.full(gm.shape, -1, np.int64)
    index[gm] = np.arange(int(gm.sum()))
    rows, cols = np.nonzero(gm)
    rows, cols = rows * step, cols * step

    cell = gm[:-1, :-1] & gm[:-1, 1:] & gm[1:, :-1] & gm[1:, 1:]
    a = index[:-1, :-1][cell]  # top-left
    b = index[:-1, 1:][cell]  # top-right
    c = index[1:, :-1][cell]  # bottom-left
    d = index[1:, 1:][cell]  # bottom-right
    # With Y = -v these are counter-clockwise seen from +Z.
    faces = np.concatenate([np.stack([a, c, d], 1), np.stack([a, d, b], 1)])

    vz = z[rows, cols]
    if max_edge_jump is not None and len(faces):
        fz = vz[faces]
        jump = np.max(np.abs(fz - np.roll(fz, 1, axis=1)), axis=1)
        faces = faces[jump <= max_edge_jump]
    if largest_component and len(faces):
        faces = _largest_component(faces, len(rows))

    every_cell = max_edge_jump is None and not largest_component  # faces = both halves of every full cell
    keep = np.ones(len(rows), bool)
    if not keep_unused:
        keep = np.zeros(len(rows), bool)
        keep[faces.ravel()] = True
        remap = np.cumsum(keep) - 1
        faces = remap[faces]
        if every_cell:
            kept = index >= 0
            kept[kept] = keep[index[kept]]
            index = np.where(kept, remap[np.maximum(index, 0)], -1)
    rows, cols, vz = rows[keep], cols[keep], vz[keep]

    vertices = np.stack([cols, -rows, vz], 1).astype(np.float32)
    uv = np.stack([cols / max(w - 1, 1), 1.0 - rows / max(h - 1, 1)], 1).astype(np.float32)
    colors = None if image is None else np.asarray(image)[rows, cols, :3].astype(np.uint8)
    return Mesh(
        vertices=vertices,
        faces=faces.astype(np.int32).reshape(-1, 3),
        uv=uv,
        colors=colors,
        grid=index if every_cell else None,
    )


def _largest_component(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """The faces of the edge-connected component with the most faces."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=False)
    face_label = labels[faces[:, 0]]
    best = np.bincount(face_label).argmax()
    return faces[face_label == best]


def smooth_depth(depth: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Masked, normalised Gaussian smoothing: only mask pixels contribute to each other.

    Args:
        depth: ``(H, W)`` depth.
        mask: ``(H, W)`` bool.
        sigma: Gaussian standard deviation in pixels (``<= 0`` returns a copy).

    Returns:
        ``(H, W)`` float32; inside the mask the weighted mean of masked neighbours, outside the
        input unchanged.
    """
    from scipy import ndimage

    z = np.asarray(depth, dtype=np.float64)
    m = np.asarray(mask, bool)
    out = z.copy()
    if sigma > 0 and m.any():
        wz = ndimage.gaussian_filter(np.where(m, z, 0.0), sigma, mode="constant")
        wm = ndimage.gaussian_filter(m.astype(np.float64), sigma, mode="constant")
        out[m] = wz[m] / np.maximum(wm[m], 1e-12)
    return out.astype(np.float32)
