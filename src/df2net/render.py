"""A small CPU z-buffer rasterizer in vectorised numpy.

Vertices come in **screen space**: ``x = u`` (column, pixel centres at integers), ``y = v`` (row,
pointing down), ``z`` = depth (larger = nearer; the z-buffer keeps the largest). The view is
orthographic: callers project. A pixel is covered by a triangle when its centre lies inside it
(a tiny tolerance closes cracks between triangles that share an edge).

The work is done per *candidate* (a pixel centre inside a triangle's bounding box), never per
triangle or per pixel in Python: candidates of a chunk of triangles are enumerated with
``np.repeat``, their barycentric weights come from each triangle's affine edge functions, and the
z-test is a ``np.maximum.at`` scatter.

``render_normals`` and ``vertex_normals`` work in the conventions' frame (``docs/conventions.md``):
X right, Y up, Z toward the viewer, so a screen vertex ``(u, v, z)`` is the 3D point
``(u, -v, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Raster", "rasterize", "vertex_normals", "render_normals", "screen_to_xyz"]

#: Barycentric tolerance for the inside test; closes cracks on shared edges.
_INSIDE_EPS = 1e-7

#: Candidates (pixel x triangle pairs) processed at once; bounds the temporary memory.
_CHUNK_CANDIDATES = 2_000_000


@dataclass
class Raster:
    """The result of rasterizing a mesh: which triangle covers each pixel, and where in it.

    Attributes:
        face_index: ``(H, W)`` int32, index of the visible triangle, -1 where none covers the
            pixel centre.
        bary: ``(H, W, 3)`` float32 barycentric weights of the pixel centre in that triangle
            (0 on background).
        depth: ``(H, W)`` float32 Z of the visible surface (larger = nearer), 0 on background.
        faces: ``(M, 3)`` the faces that were rasterized (kept for :meth:`interpolate`).
    """

    face_index: np.ndarray
    bary: np.ndarray
    depth: np.ndarray
    faces: np.ndarray | None = field(default=None, repr=False)

    @property
    def mask(self) -> np.ndarray:
        """``(H, W)`` bool, True where a triangle covers the pixel centre."""
        return self.face_index >= 0

    def interpolate(self, attributes: np.ndarray, faces: np.ndarray | None = None) -> np.ndarray:
        """Interpolate per-vertex ``attributes`` over the visible triangles.

        Args:
            attributes: ``(N, C)`` (or ``(N,)``) values per vertex.
            faces: ``(M, 3)`` the faces that were rasterized; defaults to those remembered by
                :func:`rasterize`.

        Returns:
            ``(H, W, C)`` (or ``(H, W)``) float32, 0 on background.
        """
        faces = self.faces if faces is None else faces
        if faces is None:
            raise ValueError("Raster.interpolate needs the faces that were rasterized")
        attributes = np.asarray(attributes)
        squeeze = attributes.ndim == 1
        attr = attributes.reshape(attributes.shape[0], -1).astype(np.float32, copy=False)
        h, w = self.face_index.shape
        out = np.zeros((h, w, attr.shape[1]), np.float32)
        m = self.mask
        tri = np.asarray(faces)[self.face_index[m]]  # (P, 3)
        b = self.bary[m]  # (P, 3)
        out[m] = np.einsum("pk,pkc->pc", b, attr[tri])
        return out[..., 0] if squeeze else out


def _empty_raster(height: int, width: int, faces: np.ndarray) -> Raster:
    return Raster(
        face_index=np.full((height, width), -1, np.int32),
        bary=np.zeros((height, width, 3), np.float32),
        depth=np.zeros((height, width), np.float32),
        faces=faces,
    )


def rasterize(
    vertices: np.ndarray,
    faces: np.ndarray,
    height: int,
    width: int,
    cull_backfaces: bool = False,
) -> Raster:
    """Rasterize a triangle mesh with a z-buffer (orthographic, screen-space vertices).

    Args:
        vertices: ``(N, 3)`` screen-space ``(u, v, z)``: column, row (down), depth (larger =
            nearer).
        faces: ``(M, 3)`` integer vertex indices.
        height, width: output size in pixels.
        cull_backfaces: drop triangles facing away from the viewer. A triangle faces the viewer
            when it is counter-clockwise in the X right / Y up frame, i.e. clockwise in
            ``(u, v)`` with ``v`` down. By default both windings are drawn.

    Returns:
        A :class:`Raster`; where triangles overlap the largest ``z`` wins.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (N, 3), got {v.shape}")
    out = _empty_raster(height, width, np.asarray(faces).reshape(-1, 3))
    if len(f) == 0 or height <= 0 or width <= 0:
        return out

    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    # Twice the signed area in (u, v); > 0 is clockwise as seen in the X right / Y up frame.
    area2 = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    keep = np.isfinite(area2) & (np.abs(area2) > 1e-12)
    keep &= np.isfinite(p0[:, 2]) & np.isfinite(p1[:, 2]) & np.isfinite(p2[:, 2])
    if cull_backfaces:
        keep &= area2 < 0
    xs = np.stack([p0[:, 0], p1[:, 0], p2[:, 0]], 1)
    ys = np.stack([p0[:, 1], p1[:, 1], p2[:, 1]], 1)
    with np.errstate(invalid="ignore"):
        x0 = np.clip(np.ceil(xs.min(1)), 0, width).astype(np.int64)
        x1 = np.clip(np.floor(xs.max(1)), -1, width - 1).astype(np.int64)
        y0 = np.clip(np.ceil(ys.min(1)), 0, height).astype(np.int64)
        y1 = np.clip(np.floor(ys.max(1)), -1, height - 1).astype(np.int64)
    bw = np.where(keep, np.maximum(x1 - x0 + 1, 0), 0)
    bh = np.where(keep, np.maximum(y1 - y0 + 1, 0), 0)
    counts = bw * bh
    ids = np.nonzero(counts)[0]
    if len(ids) == 0:
        return out

    # Barycentric weight i is affine in the pixel: b_i = a_i * x + c_i * y + d_i.
    coef = _barycentric_coefficients(p0[ids], p1[ids], p2[ids], area2[ids])  # (T, 3, 3)
    zs = np.stack([p0[ids, 2], p1[ids, 2], p2[ids, 2]], 1)  # (T, 3)

    zbuf = np.full(height * width, -np.inf)
    face_index = out.face_index.reshape(-1)
    bary = out.bary.reshape(-1, 3)
    cum = np.cumsum(counts[ids])
    start = 0
    while start < len(ids):
        # Largest stop with at most _CHUNK_CANDIDATES candidates (at least one triangle).
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + _CHUNK_CANDIDATES, side="right")), start + 1)
        _raster_chunk(
            np.arange(start, stop), ids, x0, y0, bw, counts, coef, zs, width, zbuf, face_index, bary
        )
        start = stop

    covered = face_index >= 0
    out.depth.reshape(-1)[covered] = zbuf[covered]
    return out


def _barycentric_coefficients(
    p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, area2: np.ndarray
) -> np.ndarray:
    """Affine coefficients of the barycentric weights: ``(T, 3, 3)`` as ``[i, (a, c, d)]``."""
    coef = np.empty((len(p0), 3, 3))
    # b0 is the edge function of edge (p1, p2) over the full area, and so on cyclically.
    for i, (pa, pb) in enumerate(((p1, p2), (p2, p0), (p0, p1))):
        ax = (pa[:, 1] - pb[:, 1]) / area2
        cy = (pb[:, 0] - pa[:, 0]) / area2
        d = (pa[:, 0] * pb[:, 1] - pb[:, 0] * pa[:, 1]) / area2
        coef[:, i, 0], coef[:, i, 1], coef[:, i, 2] = ax, cy, d
    return coef


def _raster_chunk(
    chunk: np.ndarray,
    ids: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    bw: np.ndarray,
    counts: np.ndarray,
    coef: np.ndarray,
    zs: np.ndarray,
    width: int,
    zbuf: np.ndarray,
    face_index: np.ndarray,
    bary: np.ndarray,
) -> None:
    """Rasterize the triangles ``ids[chunk]`` into the flat buffers, in place."""
    tid = ids[chunk]
    n = counts[tid]
    local = np.repeat(chunk, n)  # index into ids / coef / zs, per candidate
    offs = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    w = bw[ids[local]]
    px = x0[ids[local]] + offs % w
    py = y0[ids[local]] + offs // w
    c = coef[local]  # (K, 3, 3)
    b = c[:, :, 0] * px[:, None] + c[:, :, 1] * py[:, None] + c[:, :, 2]
    inside = (b >= -_INSIDE_EPS).all(1)
    if not inside.any():
        return
    local, px, py, b = local[inside], px[inside], py[inside], b[inside]
    z = (b * zs[local]).sum(1)
    pix = py * width + px
    # Nearest candidate per pixel within the chunk, then against what is already drawn.
    zchunk = np.full_like(zbuf, -np.inf)
    np.maximum.at(zchunk, pix, z)
    win = (z >= zchunk[pix]) & (z > zbuf[pix])
    pix, local, b, z = pix[win], local[win], b[win], z[win]
    # Ties inside the chunk: plain fancy assignment keeps one candidate per pixel; take the
    # winner's index once so face, weights and depth all come from the same candidate.
    owner = np.full(zbuf.shape, -1, np.int64)
    owner[pix] = np.arange(len(pix))
    sel = owner[pix] == np.arange(len(pix))
    pix, local, b, z = pix[sel], local[sel], b[sel], z[sel]
    zbuf[pix] = z
    face_index[pix] = ids[local]
    bary[pix] = np.clip(b, 0.0, 1.0) / np.clip(b, 0.0, 1.0).sum(1, keepdims=True)


def screen_to_xyz(vertices: np.ndarray) -> np.ndarray:
    """Screen ``(u, v, z)`` to the conventions' 3D frame ``(X, Y, Z) = (u, -v, z)``; ``(N, 3)``."""
    xyz = np.array(vertices, dtype=np.float64, copy=True)
    xyz[:, 1] *= -1.0
    return xyz


def vertex_normals(vertices_xyz: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, oriented by the winding (CCW = the side the normal faces).

    Args:
        vertices_xyz: ``(N, 3)`` points in a right-handed frame (e.g. X right, Y up, Z out).
        faces: ``(M, 3)`` vertex indices.

    Returns:
        ``(N, 3)`` float32 unit normals; zero for vertices used by no (non-degenerate) face.
    """
    v = np.asarray(vertices_xyz, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    # The cross product's length is twice the area, so summing it weights by area.
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    idx = f.T.ravel()  # every face's normal goes to each of its three corners
    acc = np.stack(
        [np.bincount(idx, weights=np.tile(fn[:, c], 3), minlength=len(v)) for c in range(3)], axis=1
    )
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.divide(acc, norm, out=np.zeros_like(acc), where=norm > 0).astype(np.float32)


def render_normals(vertices: np.ndarray, faces: np.ndarray, raster: Raster) -> np.ndarray:
    """Per-pixel unit normals of the visible surface, in the X right / Y up / Z out frame.

    Vertex normals (area-weighted, :func:`vertex_normals`) are interpolated with the raster's
    barycentric weights and renormalised. Each pixel gets the normal of the side of its triangle
    that the viewer sees, so a mesh of either winding renders with ``n_z >= 0`` on its faces.

    Args:
        vertices: ``(N, 3)`` screen-space ``(u, v, z)``, as given to :func:`rasterize`.
        faces: ``(M, 3)`` the faces given to :func:`rasterize`.
        raster: the result of :func:`rasterize` for them.

    Returns:
        ``(H, W, 3)`` float32, 0 on background.
    """
    xyz = screen_to_xyz(vertices)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = raster.interpolate(vertex_normals(xyz, f), faces=f)
    m = raster.mask
    tri = f[raster.face_index[m]]
    # Z of the geometric face normal: which side of the triangle faces the viewer.
    a, b, c = xyz[tri[:, 0]], xyz[tri[:, 1]], xyz[tri[:, 2]]
    face_z = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    nm = n[m]
    nm[face_z < 0] *= -1.0
    norm = np.linalg.norm(nm, axis=1, keepdims=True)
    nm = np.divide(nm, norm, out=np.zeros_like(nm), where=norm > 0)
    n[m] = nm
    return n
