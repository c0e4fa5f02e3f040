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
        # Corner by corner: a (P, 3, C) gather and an einsum over it are several times slower.
        acc = b[:, 0:1] * attr[tri[:, 0]]
        acc += b[:, 1:2] * attr[tri[:, 1]]
        acc += b[:, 2:3] * attr[tri[:, 2]]
        out[m] = acc
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

    # One 1-D array per vertex coordinate: reductions over a short last axis are slow in numpy.
    vx, vy, vz = (np.ascontiguousarray(v[:, k]) for k in range(3))
    corners = [np.ascontiguousarray(f[:, k]) for k in range(3)]
    (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = ((vx[c], vy[c], vz[c]) for c in corners)
    # Twice the signed area in (u, v); > 0 is clockwise as seen in the X right / Y up frame.
    area2 = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    keep = np.isfinite(area2) & (np.abs(area2) > 1e-12)
    keep &= np.isfinite(z0) & np.isfinite(z1) & np.isfinite(z2)
    if cull_backfaces:
        keep &= area2 < 0
    with np.errstate(invalid="ignore"):
        bx0 = np.clip(np.ceil(np.minimum(np.minimum(x0, x1), x2)), 0, width).astype(np.int64)
        bx1 = np.clip(np.floor(np.maximum(np.maximum(x0, x1), x2)), -1, width - 1).astype(np.int64)
        by0 = np.clip(np.ceil(np.minimum(np.minimum(y0, y1), y2)), 0, height).astype(np.int64)
        by1 = np.clip(np.floor(np.maximum(np.maximum(y0, y1), y2)), -1, height - 1).astype(np.int64)
    bw = np.where(keep, np.maximum(bx1 - bx0 + 1, 0), 0)
    bh = np.where(keep, np.maximum(by1 - by0 + 1, 0), 0)
    counts = bw * bh
    ids = np.nonzero(counts)[0]
    if len(ids) == 0:
        return out

    # Per drawn triangle: its box, and the affine coefficients of its barycentric weights
    # (b_i = a_i * x + c_i * y + d_i) and its corner depths.
    tris = _Triangles(
        ids=ids,
        x0=bx0[ids],
        y0=by0[ids],
        bw=bw[ids],
        counts=counts[ids],
        coef=_barycentric_coefficients(
            (x0[ids], y0[ids]), (x1[ids], y1[ids]), (x2[ids], y2[ids]), area2[ids]
        ),
        z=(z0[ids], z1[ids], z2[ids]),
    )

    zbuf = np.full(height * width, -np.inf)
    face_index = out.face_index.reshape(-1)
    bary = out.bary.reshape(-1, 3)
    cum = np.cumsum(tris.counts)
    start = 0
    while start < len(ids):
        # Largest stop with at most _CHUNK_CANDIDATES candidates (at least one triangle).
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + _CHUNK_CANDIDATES, side="right")), start + 1)
        _raster_chunk(start, stop, tris, width, zbuf, face_index, bary)
        start = stop

    covered = face_index >= 0
    out.depth.reshape(-1)[covered] = zbuf[covered]
    return out


@dataclass
class _Triangles:
    """The triangles that cover at least one candidate pixel, as flat per-triangle arrays."""

    ids: np.ndarray  # (T,) index into the faces
    x0: np.ndarray  # (T,) first column of the box
    y0: np.ndarray  # (T,) first row of the box
    bw: np.ndarray  # (T,) box width
    counts: np.ndarray  # (T,) box pixels (candidates)
    coef: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]  # [i] = (a_i, c_i, d_i), each (T,)
    z: tuple[np.ndarray, np.ndarray, np.ndarray]  # corner depths, each (T,)


def _barycentric_coefficients(
    p0: tuple[np.ndarray, np.ndarray],
    p1: tuple[np.ndarray, np.ndarray],
    p2: tuple[np.ndarray, np.ndarray],
    area2: np.ndarray,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """Affine coefficients ``(a_i, c_i, d_i)`` of the barycentric weights ``b_i``, each ``(T,)``."""
    coef = []
    # b0 is the edge function of edge (p1, p2) over the full area, and so on cyclically.
    for (ax, ay), (bx, by) in ((p1, p2), (p2, p0), (p0, p1)):
        coef.append(((ay - by) / area2, (bx - ax) / area2, (ax * by - bx * ay) / area2))
    return tuple(coef)


def _raster_chunk(
    start: int,
    stop: int,
    tris: _Triangles,
    width: int,
    zbuf: np.ndarray,
    face_index: np.ndarray,
    bary: np.ndarray,
) -> None:
    """Rasterize the triangles ``tris[start:stop]`` into the flat buffers, in place."""
    n = tris.counts[start:stop]
    local = np.repeat(np.arange(start, stop), n)  # index into tris, per candidate
    offs = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    w = tris.bw[local]
    px = tris.x0[local] + offs % w
    py = tris.y0[local] + offs // w
    b = [a[local] * px + c[local] * py + d[local] for a, c, d in tris.coef]
    inside = (b[0] >= -_INSIDE_EPS) & (b[1] >= -_INSIDE_EPS) & (b[2] >= -_INSIDE_EPS)
    if not inside.any():
        return
    local, px, py = local[inside], px[inside], py[inside]
    b = [bi[inside] for bi in b]
    z = b[0] * tris.z[0][local] + b[1] * tris.z[1][local] + b[2] * tris.z[2][local]
    pix = py * width + px
    # Nearest candidate per pixel within the chunk, then against what is already drawn.
    zchunk = np.full_like(zbuf, -np.inf)
    np.maximum.at(zchunk, pix, z)
    win = (z >= zchunk[pix]) & (z > zbuf[pix])
    pix, local, z = pix[win], local[win], z[win]
    b = [bi[win] for bi in b]
    # Ties inside the chunk: plain fancy assignment keeps one candidate per pixel; take the
    # winner's index once so face, weights and depth all come from the same candidate.
    owner = np.full(zbuf.shape, -1, np.int64)
    order = np.arange(len(pix))
    owner[pix] = order
    sel = owner[pix] == order
    pix, local, z = pix[sel], local[sel], z[sel]
    b = [np.clip(bi[sel], 0.0, 1.0) for bi in b]
    total = b[0] + b[1] + b[2]
    zbuf[pix] = z
    face_index[pix] = tris.ids[local]
    for i in range(3):
        bary[pix, i] = b[i] / total


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
    # The cross product's length is twice the area, so summing it weights by area. Computed one
    # coordinate at a time on contiguous 1-D arrays (np.cross on (M, 3) rows is slower).
    x, y, z = (np.ascontiguousarray(v[:, k]) for k in range(3))
    i0, i1, i2 = (np.ascontiguousarray(f[:, k]) for k in range(3))
    ex = (x[i1] - x[i0], y[i1] - y[i0], z[i1] - z[i0])
    ey = (x[i2] - x[i0], y[i2] - y[i0], z[i2] - z[i0])
    fn = (
        ex[1] * ey[2] - ex[2] * ey[1],
        ex[2] * ey[0] - ex[0] * ey[2],
        ex[0] * ey[1] - ex[1] * ey[0],
    )
    idx = f.T.ravel()  # every face's normal goes to each of its three corners
    acc = np.empty((len(v), 3))
    for c in range(3):
        acc[:, c] = np.bincount(idx, weights=np.tile(fn[c], 3), minlength=len(v))
    norm = np.sqrt(acc[:, 0] ** 2 + acc[:, 1] ** 2 + acc[:, 2] ** 2)[:, None]
    return np.divide(acc, norm, out=np.zeros_like(acc), where=norm > 0).astype(np.float32)


def render_normals(
    vertices: np.ndarray, faces: np.ndarray, raster: Raster, normals: np.ndarray | None = None
) -> np.ndarray:
    """Per-pixel unit normals of the visible surface, in the X right / Y up / Z out frame.

    Vertex normals (area-weighted, :func:`vertex_normals`) are interpolated with the raster's
    barycentric weights and renormalised. Each pixel gets the normal of the side of its triangle
    that the viewer sees, so a mesh of either winding renders with ``n_z >= 0`` on its faces.

    Args:
        vertices: ``(N, 3)`` screen-space ``(u, v, z)``, as given to :func:`rasterize`.
        faces: ``(M, 3)`` the faces given to :func:`rasterize`.
        raster: the result of :func:`rasterize` for them.
        normals: ``(N, 3)`` vertex normals in the X right / Y up / Z out frame, when the caller
            has them already (e.g. rotated from another view); default :func:`vertex_normals`.

    Returns:
        ``(H, W, 3)`` float32, 0 on background.
    """
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if normals is None:
        normals = vertex_normals(screen_to_xyz(vertices), f)
    n = raster.interpolate(normals, faces=f)
    m = raster.mask
    tri = f[raster.face_index[m]]
    # Z of the geometric face normal: which side of the triangle faces the viewer. In screen
    # space (v down) that is minus the (u, v) cross product.
    u, v = (np.asarray(vertices, dtype=np.float64)[:, k] for k in range(2))
    du1, du2 = u[tri[:, 1]] - u[tri[:, 0]], u[tri[:, 2]] - u[tri[:, 0]]
    dv1, dv2 = v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]]
    face_z = du2 * dv1 - du1 * dv2
    nm = n[m]
    nm[face_z < 0] *= -1.0
    norm = np.sqrt(nm[:, 0] ** 2 + nm[:, 1] ** 2 + nm[:, 2] ** 2)[:, None]
    nm = np.divide(nm, norm, out=np.zeros_like(nm), where=norm > 0)
    n[m] = nm
    return n
