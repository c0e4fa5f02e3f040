"""The rasterizer against geometry that is known: spheres, planes, occlusion, coverage."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from df2net.render import rasterize, render_normals, screen_to_xyz, vertex_normals

H = W = 128
R = 50.0
CU, CV = 63.3, 64.6  # off-grid centre


def _sphere_screen(subdivisions: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Icosphere of radius R, in screen space (u, v, z); outward CCW winding in X/Y/Z."""
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=R)
    xyz = np.asarray(m.vertices)
    screen = np.c_[xyz[:, 0] + CU, -xyz[:, 1] + CV, xyz[:, 2]]
    return screen, np.asarray(m.faces)


def _analytic_sphere() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x, y = u - CU, -(v - CV)
    r2 = x**2 + y**2
    inner = r2 < (0.9 * R) ** 2
    z = np.sqrt(np.clip(R**2 - r2, 0, None))
    n = np.stack([x, y, z], -1) / R
    return z, n, inner


def test_sphere_depth_and_normals() -> None:
    v, f = _sphere_screen()
    r = rasterize(v, f, H, W)
    z, n, inner = _analytic_sphere()
    assert r.mask[inner].all()
    assert np.abs(r.depth[inner] - z[inner]).max() < 0.25
    # Coverage matches the disc (only rim pixels can differ).
    v_, u_ = np.mgrid[0:H, 0:W]
    outside = (u_ - CU) ** 2 + (v_ - CV) ** 2 > (R + 1) ** 2
    assert not r.mask[outside].any()
    normals = render_normals(v, f, r)
    cos = np.clip((normals[inner] * n[inner]).sum(-1), -1, 1)
    assert np.degrees(np.arccos(cos)).max() < 1.0
    assert np.allclose(np.linalg.norm(normals[r.mask], axis=-1), 1, atol=1e-5)
    assert (normals[~r.mask] == 0).all() and (r.depth[~r.mask] == 0).all()


def test_sphere_normals_independent_of_winding() -> None:
    v, f = _sphere_screen(4)
    r = rasterize(v, f[:, ::-1], H, W)
    normals = render_normals(v, f[:, ::-1], r)
    _, n, inner = _analytic_sphere()
    cos = np.clip((normals[inner] * n[inner]).sum(-1), -1, 1)
    assert np.degrees(np.arccos(cos)).max() < 2.0


def test_tilted_plane_depth_is_exact() -> None:
    a, b, c = 0.3, -0.7, 20.0
    corners = np.array([[-0.5, -0.5], [W - 0.5, -0.5], [W - 0.5, H - 0.5], [-0.5, H - 0.5]])
    v = np.c_[corners, a * corners[:, 0] + b * corners[:, 1] + c]
    f = np.array([[0, 1, 2], [0, 2, 3]])
    r = rasterize(v, f, H, W)
    assert r.mask.all()
    vv, uu = np.mgrid[0:H, 0:W]
    assert np.allclose(r.depth, a * uu + b * vv + c, atol=1e-3)
    # Interpolating the vertex positions gives back the pixel centres.
    uv = r.interpolate(v[:, :2])
    assert np.allclose(uv[..., 0], uu, atol=1e-3) and np.allclose(uv[..., 1], vv, atol=1e-3)
    # Normal of z = a u + b v: n ∝ (-dZ/dX, -dZ/dY, 1) = (-a, b, 1) since Y = -v.
    n = render_normals(v, f, r)
    expect = np.array([-a, b, 1.0]) / np.linalg.norm([-a, b, 1.0])
    assert np.allclose(n, expect, atol=1e-5)


def test_nearer_triangle_wins() -> None:
    tri = np.array([[10.0, 10.0], [100.0, 20.0], [30.0, 110.0]])
    far = np.c_[tri, np.full(3, 5.0)]
    near = np.c_[tri + 3.0, np.full(3, 9.0)]
    for order in ((far, near), (near, far)):
        v = np.concatenate(order)
        f = np.array([[0, 1, 2], [3, 4, 5]])
        r = rasterize(v, f, H, W)
        near_id = 1 if order[1] is near else 0
        centre = (int(tri[:, 1].mean()) + 3, int(tri[:, 0].mean()) + 3)
        assert r.face_index[centre] == near_id
        assert r.depth[centre] == pytest.approx(9.0)
        assert (r.depth[r.mask] >= 5.0 - 1e-6).all()


def test_coverage_matches_area_and_shared_edges_have_no_cracks() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        pts = rng.uniform(5, 120, size=(3, 2))
        e1, e2 = pts[1] - pts[0], pts[2] - pts[0]
        area = 0.5 * abs(e1[0] * e2[1] - e1[1] * e2[0])
        if area < 300:
            continue
        r = rasterize(np.c_[pts, np.zeros(3)], np.array([[0, 1, 2]]), H, W)
        perimeter = sum(np.linalg.norm(pts[i] - pts[i - 1]) for i in range(3))
        assert abs(r.mask.sum() - area) < perimeter  # edge pixels only
    # A fan of triangles around a centre: every pixel inside the hull is covered exactly once.
    ang = np.linspace(0, 2 * np.pi, 17)[:-1]
    ring = np.c_[64 + 40 * np.cos(ang), 64 + 40 * np.sin(ang)]
    v = np.r_[[[64.2, 63.7]], ring]
    v = np.c_[v, np.zeros(len(v))]
    f = np.array([[0, 1 + i, 1 + (i + 1) % 16] for i in range(16)])
    r = rasterize(v, f, H, W)
    vv, uu = np.mgrid[0:H, 0:W]
    inside = (uu - 64) ** 2 + (vv - 64) ** 2 < (40 * np.cos(np.pi / 16) - 1) ** 2
    assert r.mask[inside].all()


def test_backface_culling_follows_viewer_ccw() -> None:
    # CCW in X right / Y up (as seen by the viewer) is clockwise in (u, v) with v down.
    ccw_xy = np.array([[10.0, 10.0, 0.0], [10.0, 60.0, 0.0], [60.0, 10.0, 0.0]])  # (u, v, z)
    assert np.cross(*(screen_to_xyz(ccw_xy)[1:] - screen_to_xyz(ccw_xy)[0]))[2] > 0
    front = rasterize(ccw_xy, np.array([[0, 1, 2]]), H, W, cull_backfaces=True)
    back = rasterize(ccw_xy, np.array([[0, 2, 1]]), H, W, cull_backfaces=True)
    assert front.mask.sum() > 1000 and back.mask.sum() == 0
    assert rasterize(ccw_xy, np.array([[0, 2, 1]]), H, W).mask.sum() == front.mask.sum()


def test_offscreen_and_degenerate_triangles() -> None:
    v = np.array([[-50.0, -50, 0], [-10, -50, 0], [-50, -10, 0], [5, 5, 0], [10, 10, 0], [15, 15, 0]])
    r = rasterize(v, np.array([[0, 1, 2], [3, 4, 5]]), H, W)
    assert not r.mask.any()
    empty = rasterize(np.zeros((0, 3)), np.zeros((0, 3), int), H, W)
    assert empty.face_index.shape == (H, W) and not empty.mask.any()


def test_vertex_normals_area_weighted() -> None:
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = np.array([[0, 1, 2], [0, 1, 3]])  # +Z face and -Y face
    n = vertex_normals(v, f)
    assert np.allclose(n[2], [0, 0, 1]) and np.allclose(n[3], [0, -1, 0])
    assert np.allclose(n[0], np.array([0, -1, 1]) / np.sqrt(2))


def _height_field_screen(turn_deg: float, scale: float) -> tuple[object, np.ndarray, np.ndarray]:
    """A bumpy height field with a ragged mask, as depth_to_mesh cuts it, projected as the preview
    projects it: turned about the vertical axis, scaled, in screen space."""
    from df2net.geometry import depth_to_mesh

    v, u = np.mgrid[0:60, 0:70].astype(np.float64)
    depth = 25 * np.exp(-((u - 35) ** 2 + (v - 28) ** 2) / 400) + 2 * np.sin(u / 2.5) * np.cos(v / 3.1)
    mask = ((u - 35) ** 2 / 30**2 + (v - 30) ** 2 / 26**2 < 1) & ~((u > 50) & (v < 12))
    mesh = depth_to_mesh(depth.astype(np.float32), mask)
    a = np.radians(turn_deg)
    xyz = mesh.vertices.astype(np.float64) - [35.0, -30.0, 10.0]
    x, z = np.cos(a) * xyz[:, 0] + np.sin(a) * xyz[:, 2], -np.sin(a) * xyz[:, 0] + np.cos(a) * xyz[:, 2]
    screen = np.c_[H / 2 + x * scale, H / 2 - xyz[:, 1] * scale, z * scale]
    normals = vertex_normals(mesh.vertices, mesh.faces)
    normals[:, 0], normals[:, 2] = (np.cos(a) * normals[:, 0] + np.sin(a) * normals[:, 2],
                                    -np.sin(a) * normals[:, 0] + np.cos(a) * normals[:, 2])
    return mesh, screen, normals


@pytest.mark.parametrize(("turn_deg", "scale"), [(0.0, 1.7), (45.0, 1.7), (60.0, 0.8), (-30.0, 1.13)])
def test_grid_renderer_matches_the_rasterizer(turn_deg: float, scale: float) -> None:
    from df2net.render import render_grid_normals

    mesh, screen, normals = _height_field_screen(turn_deg, scale)
    assert mesh.grid is not None
    general = render_normals(screen, mesh.faces, rasterize(screen, mesh.faces, H, W), normals=normals)
    covered_general = rasterize(screen, mesh.faces, H, W).mask
    grid_normals, covered = render_grid_normals(screen, mesh.grid, normals, H, W)
    # The same pixels (a pixel centre exactly on an edge may go either way) and the same normals.
    assert (covered != covered_general).sum() <= 2
    both = covered & covered_general
    assert both.sum() > 500
    np.testing.assert_allclose(grid_normals[both], general[both], atol=1e-5)
    assert (grid_normals[~covered] == 0).all()


def test_grid_renderer_declines_a_view_that_tilts_the_rows() -> None:
    from df2net.render import render_grid_normals

    mesh, screen, normals = _height_field_screen(0.0, 1.5)
    tilted = screen.copy()
    tilted[:, 1] += 0.05 * tilted[:, 0]  # rolled: a grid row is no longer level on screen
    assert render_grid_normals(tilted, mesh.grid, normals, H, W) is None
    from df2net.geometry import depth_to_mesh

    filtered = depth_to_mesh(np.ones((8, 8), np.float32), np.ones((8, 8), bool), max_edge_jump=5.0)
    assert filtered.grid is None  # faces dropped by a filter: not every cell is its two triangles
