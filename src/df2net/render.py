"""A small CPU z-buffer rasterizer in vectorised numpy.

Vertices come in **screen space**: ``x = u`` (column, pixel centres at integers), ``y = v`` (row,
pointing down), ``z`` = depth (larger = nearer; the z-buffer keeps the largest). The view is
orthographic: callers project. A pixel is covered by a triangle when its centre lies inside it
(a tiny tolerance closes cracks between triangles that share an edge).

The work is done per *candidate* (a pixel centre inside a triangle's bounding box), never per
triangle or per pixel in Python: candidates of a chunk of triangles are enumerated with
``np.repeat``, their barycentric weights come from each triangle's affine edge functions, and the
z-test is a ``np.maximum.at`` scatter.

A mesh cut from a pixel grid (:attr:`df2net.geometry.Mesh.grid`) seen from a direction that
keeps its rows level on screen (turned about the vertical axis only) has a cheaper way with the
same result, :func:`render_grid_normals`: each pixel row crosses one row of grid cells, so the
surface under it is a polyline, two segments per cell, and only the pixel centres on each
segment are candidates (about one per pixel, against several per triangle above).

``render_normals`` and ``vertex_normals`` work in the conventions' frame (``docs/conventions.md``):
X right, Y up, Z toward the viewer, so a screen vertex ``(u, v, z)`` is the 3D point
``(u, -v, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Raster", "rasterize", "vertex_normals", "render_normals", "render_grid_normals", "screen_to_xyz"]

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


def render_grid_normals(
    vertices: np.ndarray, grid: np.ndarray, normals: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`render_normals` of :func:`rasterize` for a mesh cut from a pixel grid, made
    scanline by scanline; None when the view does not keep the grid's rows level on screen.

    The mesh is the one :func:`df2net.geometry.depth_to_mesh` makes: every cell of ``grid`` whose
    four corners are vertices is the triangles ``(a, c, d)`` and ``(a, d, b)`` (``a`` top left,
    ``b`` top right, ``c`` bottom left, ``d`` bottom right), and nothing else. When every
    vertex of a grid row has the same screen ``v`` (and rows go down the screen), pixel row
    ``py`` between grid rows ``r`` and ``r + 1`` (at ``t`` of the way) crosses each cell of that
    row along two segments: the left edge's point ``(1 - t) a + t c`` to the diagonal's
    ``(1 - t) a + t d``, then on to the right edge's ``(1 - t) b + t d``. The pixel centres on
    each segment get its depth and normal by linear interpolation along it, which is the
    triangle's barycentric interpolation; the nearest wins, as in :func:`rasterize`, and a
    triangle seen from behind (its segment running right to left) shows its normal turned
    round, as in :func:`render_normals`. The two agree up to rounding (and on which of two
    triangles draws a pixel centre lying exactly on their shared edge).

    Args:
        vertices: ``(N, 3)`` screen-space ``(u, v, z)``.
        grid: ``(rows, cols)`` vertex of each grid point, -1 where none (:attr:`Mesh.grid`).
        normals: ``(N, 3)`` vertex normals (X right, Y up, Z out).
        height, width: output size in pixels.

    Returns:
        ``(H, W, 3)`` float32 unit normals (0 on background) and the ``(H, W)`` bool mask of the
        pixels covered (:attr:`Raster.mask`); or None (see above).
    """
    v = np.asarray(vertices, dtype=np.float64)
    grid = np.asarray(grid)
    out = np.zeros((height, width, 3), np.float32)
    covered = np.zeros((height, width), bool)
    present = grid >= 0
    cells = present[:-1, :-1] & present[:-1, 1:] & present[1:, :-1] & present[1:, 1:]
    if not cells.any() or height <= 0 or width <= 0:
        return out, covered
    # Only the rows and columns the cells reach.
    rows = np.nonzero(cells.any(axis=1))[0]
    cols = np.nonzero(cells.any(axis=0))[0]
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 2, int(cols[0]), int(cols[-1]) + 2
    grid, present, cells = grid[r0:r1, c0:c1], present[r0:r1, c0:c1], cells[r0 : r1 - 1, c0 : c1 - 1]
    at = np.where(present, grid, 0)
    sy = np.where(present, v[at, 1], np.nan)
    with np.errstate(invalid="ignore"):
        row_y = np.nanmax(sy, axis=1)  # every row holds a vertex: it touches a cell
        level = np.nanmax(np.abs(sy - row_y[:, None]), axis=1)
    if not (level <= 1e-9 * max(1.0, float(np.abs(row_y).max()))).all() or not (np.diff(row_y) > 0).all():
        return None

    # Scanlines: pixel rows py with row_y[r] <= py <= row_y[r + 1] for a cell row r holding cells.
    top, bottom = row_y[:-1], row_y[1:]
    first = np.clip(np.ceil(top), 0, height).astype(np.int64)
    last = np.clip(np.floor(bottom), -1, height - 1).astype(np.int64)
    count = np.where(cells.any(axis=1), np.maximum(last - first + 1, 0), 0)
    r = np.repeat(np.arange(len(count)), count)
    if len(r) == 0:
        return out, covered
    py = first[r] + np.arange(len(r)) - np.repeat(np.cumsum(count) - count, count)
    t_row = (py - top[r]) / (bottom[r] - top[r])

    # Every (scanline, cell) crossing: the flat grid index of the cell's top-left corner.
    line, col = np.nonzero(cells[r])
    gw = grid.shape[1]
    k_a = r[line] * gw + col
    k_c = k_a + gw
    t = t_row[line]
    y = py[line]
    flat = at.ravel()

    def crossing(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A vertex attribute at the left edge, the diagonal and the right edge of each crossing."""
        g = values[flat]
        a, b, c, d = g[k_a], g[k_a + 1], g[k_c], g[k_c + 1]
        return a + t * (c - a), a + t * (d - a), b + t * (d - b)

    # Segments: left edge -> diagonal (triangle a, c, d), then diagonal -> right edge (a, d, b).
    left, diagonal, right = crossing(v[:, 0])
    x0, x1 = np.concatenate([left, diagonal]), np.concatenate([diagonal, right])
    left, diagonal, right = crossing(v[:, 2])
    z0, z1 = np.concatenate([left, diagonal]), np.concatenate([diagonal, right])
    dx = x1 - x0
    with np.errstate(invalid="ignore"):
        lo = np.clip(np.ceil(np.minimum(x0, x1)), 0, width).astype(np.int64)
        hi = np.clip(np.floor(np.maximum(x0, x1)), -1, width - 1).astype(np.int64)
    n = np.where(np.abs(dx) > 1e-12, np.maximum(hi - lo + 1, 0), 0)
    seg = np.repeat(np.arange(len(n)), n)
    if len(seg) == 0:
        return out, covered
    px = lo[seg] + np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n)
    s = (px - x0[seg]) / dx[seg]
    z = z0[seg] + s * (z1[seg] - z0[seg])
    pix = np.concatenate([y, y])[seg] * width + px

    # Nearest candidate per pixel; one winner where several tie.
    zbuf = np.full(height * width, -np.inf)
    np.maximum.at(zbuf, pix, z)
    win = np.nonzero(z >= zbuf[pix])[0]
    owner = np.full(height * width, -1, np.int64)
    owner[pix[win]] = win
    win = win[owner[pix[win]] == win]
    seg, s, pix = seg[win], s[win], pix[win]

    # The winners' normals, interpolated along their segments.
    second = seg >= len(k_a)  # on the diagonal -> right edge segment
    crossing_of = np.where(second, seg - len(k_a), seg)
    k_a, k_c, t = k_a[crossing_of], k_c[crossing_of], t[crossing_of]
    normals = np.asarray(normals, np.float64)
    nrm = np.empty((len(seg), 3))
    for k in range(3):
        g = normals[:, k][flat]
        a, b, c, d = g[k_a], g[k_a + 1], g[k_c], g[k_c + 1]
        diagonal = a + t * (d - a)
        begin = np.where(second, diagonal, a + t * (c - a))
        finish = np.where(second, b + t * (d - b), diagonal)
        nrm[:, k] = begin + s * (finish - begin)
    nrm[dx[seg] < 0] *= -1.0  # seen from behind
    nrm /= np.maximum(np.sqrt(nrm[:, 0] ** 2 + nrm[:, 1] ** 2 + nrm[:, 2] ** 2), 1e-300)[:, None]
    out.reshape(-1, 3)[pix] = nrm
    covered.reshape(-1)[pix] = True
    return out, covered
