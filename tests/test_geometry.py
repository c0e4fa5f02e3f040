"""Depth to normals, points and meshes, checked on spheres and planes whose geometry is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh

from df2net.geometry import (
    Mesh,
    depth_to_mesh,
    depth_to_normals,
    depth_to_normals_torch,
    depth_to_points,
    normals_to_rgb,
    rgb_to_normals,
    smooth_depth,
)
from df2net.render import rasterize, render_normals

H = W = 96
R = 40.0
CU, CV = 47.3, 48.6


def _sphere() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Analytic sphere depth, mask, normals and the 'away from the rim' region."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x, y = u - CU, -(v - CV)
    r2 = x**2 + y**2
    mask = r2 < R**2
    z = np.where(mask, np.sqrt(np.clip(R**2 - r2, 0, None)), 0.0) + 10.0
    n = np.stack([x, y, np.sqrt(np.clip(R**2 - r2, 0, None))], -1) / R
    inner = r2 < (0.85 * R) ** 2
    return z.astype(np.float32), mask, n, inner


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1, 1)))


def _tilted_plane(a: float = 0.4, b: float = -0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    depth = (a * u + b * v + 30.0).astype(np.float32)
    mask = (u - 48) ** 2 / 35**2 + (v - 40) ** 2 / 25**2 < 1
    mask[38:44, 40:52] = False  # a hole
    expect = np.array([-a, b, 1.0]) / np.linalg.norm([-a, b, 1.0])
    return np.where(mask, depth, 0.0).astype(np.float32), mask, expect


def test_sphere_normals_match_analytic() -> None:
    z, mask, n, inner = _sphere()
    got = depth_to_normals(z, mask)
    assert got.dtype == np.float32 and got.shape == (H, W, 3)
    assert _angle_deg(got[inner], n[inner]).max() < 3.0
    assert (got[~mask] == 0).all() and (got[mask][:, 2] > 0).all()


def test_rendered_sphere_depth_gives_rendered_normals() -> None:
    m = trimesh.creation.icosphere(subdivisions=5, radius=R)
    xyz = np.asarray(m.vertices)
    screen = np.c_[xyz[:, 0] + CU, -xyz[:, 1] + CV, xyz[:, 2]]
    r = rasterize(screen, m.faces, H, W)
    rn = render_normals(screen, m.faces, r)
    _, _, _, inner = _sphere()
    assert _angle_deg(depth_to_normals(r.depth, r.mask)[inner], rn[inner]).max() < 3.0


def test_tilted_plane_normals_exact_everywhere_in_mask() -> None:
    depth, mask, expect = _tilted_plane()
    got = depth_to_normals(depth, mask)
    assert np.allclose(got[mask], expect, atol=1e-5)
    # Without a mask the image border is one-sided too.
    v, u = np.mgrid[0:H, 0:W]
    full = depth_to_normals((0.4 * u - 0.25 * v).astype(np.float32))
    assert np.allclose(full, expect, atol=1e-5)


def test_torch_normals_match_numpy_and_are_differentiable() -> None:
    depth, mask, expect = _tilted_plane()
    z, _, _, _ = _sphere()
    sphere_mask = z > 10.0
    d = torch.tensor(np.stack([depth, z])[:, None], dtype=torch.float64, requires_grad=True)
    m = torch.tensor(np.stack([mask, sphere_mask])[:, None])
    n = depth_to_normals_torch(d, m)
    assert n.shape == (2, 3, H, W)
    assert np.allclose(n[0].permute(1, 2, 0).detach().numpy()[mask], expect, atol=1e-6)
    assert np.allclose(n[1].permute(1, 2, 0).detach().numpy(), depth_to_normals(z, sphere_mask), atol=1e-5)
    n[:, 2].sum().backward()
    assert d.grad is not None and torch.isfinite(d.grad).all() and d.grad.abs().sum() > 0
    assert (depth_to_normals_torch(d.detach()[:1])[0, 2] > 0).all()


def test_normals_png_round_trip(tmp_path: Path) -> None:
    from PIL import Image

    z, mask, _, _ = _sphere()
    n = depth_to_normals(z, mask)
    rgb = normals_to_rgb(n, mask)
    assert rgb.dtype == np.uint8 and (rgb[~mask] == 0).all()
    # A frontal normal (0, 0, 1) is the familiar (128, 128, 255) lilac.
    lilac = normals_to_rgb(np.array([[[0.0, 0.0, 1.0]]]), np.ones((1, 1), bool))
    assert lilac.tolist() == [[[128, 128, 255]]]
    Image.fromarray(rgb).save(tmp_path / "n.png")
    back = rgb_to_normals(np.asarray(Image.open(tmp_path / "n.png")), mask)
    assert _angle_deg(back[mask], n[mask]).max() < 1.0
    assert (back[~mask] == 0).all()


def test_points_follow_the_convention() -> None:
    depth, mask, _ = _tilted_plane()
    img = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    pts, cols = depth_to_points(depth, mask, img)
    assert pts.shape == (mask.sum(), 3) and cols is not None and cols.shape == (mask.sum(), 3)
    rows, cs = np.nonzero(mask)
    assert np.array_equal(pts[:, 0], cs) and np.array_equal(pts[:, 1], -rows)
    assert np.allclose(pts[:, 2], depth[rows, cs]) and np.array_equal(cols, img[rows, cs])
    assert depth_to_points(depth, mask)[1] is None


def test_mesh_respects_mask_and_hole() -> None:
    depth, mask, _ = _tilted_plane()
    mesh = depth_to_mesh(depth, mask)
    # Vertices back to pixels: no triangle touches a masked-out pixel.
    cols = mesh.vertices[:, 0].astype(int)
    rows = (-mesh.vertices[:, 1]).astype(int)
    assert mask[rows, cols].all()
    assert not (mask[rows[mesh.faces], cols[mesh.faces]] == 0).any()
    # No triangle spans the hole: every triangle's bounding box is a single grid cell.
    fr, fc = rows[mesh.faces], cols[mesh.faces]
    assert (fr.max(1) - fr.min(1) == 1).all() and (fc.max(1) - fc.min(1) == 1).all()
    hole = ~mask[38:44, 40:52]
    assert hole.all()
    # UVs: GL convention.
    assert np.allclose(mesh.uv[:, 0], cols / (W - 1)) and np.allclose(mesh.uv[:, 1], 1 - rows / (H - 1))


def test_vertex_count_equals_mask_pixels() -> None:
    mask = np.zeros((H, W), bool)
    mask[10:50, 20:70] = True
    depth = np.full((H, W), 5.0, np.float32)
    mesh = depth_to_mesh(depth, mask)
    assert len(mesh.vertices) == mask.sum()
    assert len(mesh.faces) == 2 * 39 * 49
    _, sphere_mask, _, _ = _sphere()
    full = depth_to_mesh(depth, sphere_mask, keep_unused=True)
    assert len(full.vertices) == sphere_mask.sum()
    coarse = depth_to_mesh(depth, mask, step=2)
    assert len(coarse.vertices) == mask[::2, ::2].sum()
    assert (coarse.vertices[:, 0] % 2 == 0).all()


def test_sphere_mesh_is_manifold_and_frontal_plane_faces_viewer() -> None:
    z, mask, _, _ = _sphere()
    mesh = depth_to_mesh(z, mask)
    f = mesh.faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() <= 2
    tm = mesh.to_trimesh()
    assert not tm.is_watertight and tm.is_winding_consistent
    assert (mesh.face_normals()[:, 2] > 0).all()  # a height field seen from the front
    flat = depth_to_mesh(np.zeros((8, 8), np.float32), np.ones((8, 8), bool))
    assert np.allclose(flat.face_normals(), [0, 0, 1])


def test_edge_jump_and_largest_component() -> None:
    depth = np.full((20, 30), 5.0, np.float32)
    mask = np.zeros((20, 30), bool)
    mask[2:18, 2:12] = True
    mask[2:6, 20:24] = True  # a small island
    depth[10, 5] = 50.0  # a spike
    mesh = depth_to_mesh(depth, mask, max_edge_jump=3.0)
    assert not (mesh.vertices[:, 2] > 40).any()  # the spike lost all its triangles
    big = depth_to_mesh(depth, mask, largest_component=True)
    assert (big.vertices[:, 0] < 15).all()
    assert len(depth_to_mesh(depth, mask).vertices) == mask.sum()


def test_trimesh_export_and_load(tmp_path: Path) -> None:
    z, mask, _, _ = _sphere()
    img = np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8)
    mesh = depth_to_mesh(z, mask, image=img, step=2)
    assert mesh.colors is not None and mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    coloured = mesh.to_trimesh()
    coloured.export(tmp_path / "m.ply")
    back = trimesh.load(tmp_path / "m.ply", process=False)
    assert len(back.vertices) == len(mesh.vertices) and len(back.faces) == len(mesh.faces)
    assert np.array_equal(back.visual.vertex_colors[:, :3], mesh.colors)
    textured = mesh.to_trimesh(texture=img)
    assert isinstance(textured.visual, trimesh.visual.TextureVisuals)
    textured.export(tmp_path / "m.obj")
    loaded = trimesh.load(tmp_path / "m.obj", process=False, force="mesh")
    assert len(loaded.faces) == len(mesh.faces)
    glb = tmp_path / "m.glb"
    textured.export(glb)
    assert len(trimesh.load(glb, force="mesh").faces) == len(mesh.faces)
    assert isinstance(Mesh(mesh.vertices, mesh.faces, mesh.uv).to_trimesh(), trimesh.Trimesh)


def test_smooth_depth_does_not_bleed_background() -> None:
    depth, mask, _ = _tilted_plane()
    sm = smooth_depth(depth, mask, sigma=3.0)
    # A plane stays a plane except near the rim, where the one-sided mean shifts it a little;
    # crucially the rim is not pulled toward the zero background.
    assert np.abs(sm[mask] - depth[mask]).max() < 3.0
    const = np.where(mask, 7.0, 0.0).astype(np.float32)
    assert np.allclose(smooth_depth(const, mask, 4.0)[mask], 7.0, atol=1e-5)
    assert (smooth_depth(const, mask, 4.0)[~mask] == 0).all()
    assert np.array_equal(smooth_depth(depth, mask, 0.0), depth)
