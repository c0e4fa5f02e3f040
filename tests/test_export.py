"""Output writers and the preview: round trips through the files, and known geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from df2net import export, preview
from df2net.export import (
    read_depth_png16,
    read_normals_png,
    write_depth_colormap_png,
    write_depth_npy,
    write_depth_png16,
    write_glb,
    write_mask_png,
    write_normals_png,
    write_obj,
    write_ply,
    write_rgb_png,
)
from df2net.geometry import Mesh, depth_to_mesh
from df2net.preview import make_preview, render_shaded

SIZE = 64
CENTRE = (SIZE - 1) / 2.0
RADIUS = 24.0


def sphere_depth(
    size: int = SIZE, radius: float = RADIUS, base: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """A hemisphere facing the viewer over a ``size`` grid: ``(depth, mask)`` in crop pixels."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2.0
    r2 = (u - c) ** 2 + (v - c) ** 2
    mask = r2 < (radius - 0.5) ** 2
    depth = np.where(mask, base + np.sqrt(np.clip(radius**2 - r2, 0.0, None)), 0.0)
    return depth.astype(np.float32), mask


def sphere_normals(size: int = SIZE, radius: float = RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Analytic unit normals of :func:`sphere_depth` (X right, Y up, Z out)."""
    depth, mask = sphere_depth(size, radius, base=0.0)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2.0
    n = np.stack([u - c, -(v - c), depth], axis=-1) / radius
    n[~mask] = 0.0
    return n.astype(np.float32), mask


def gradient_image(size: int = SIZE) -> np.ndarray:
    """A colourful ``(size, size, 3)`` uint8 texture: red across, green down."""
    v, u = np.mgrid[0:size, 0:size]
    return np.stack([u * 255 // (size - 1), v * 255 // (size - 1), np.full_like(u, 90)], -1).astype(np.uint8)


def sphere_mesh(size: int = SIZE, radius: float = RADIUS, with_colors: bool = True) -> Mesh:
    depth, mask = sphere_depth(size, radius)
    return depth_to_mesh(depth, mask, gradient_image(size) if with_colors else None)


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".part" in p.name]


# ---------------------------------------------------------------------------------------------
# Depth
# ---------------------------------------------------------------------------------------------


def test_depth_npy_round_trip(tmp_path: Path) -> None:
    depth, _ = sphere_depth()
    write_depth_npy(tmp_path / "depth.npy", depth.astype(np.float64))
    back = np.load(tmp_path / "depth.npy")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, depth)


def test_depth_npy_keeps_the_name_it_is_given(tmp_path: Path) -> None:
    write_depth_npy(tmp_path / "depth.bin", np.zeros((3, 4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.bin"]


def test_depth_png16_round_trip(tmp_path: Path) -> None:
    depth, mask = sphere_depth()
    depth[mask] += np.random.default_rng(0).normal(0, 0.3, int(mask.sum())).astype(np.float32)
    path = tmp_path / "depth.png"
    encoding = write_depth_png16(path, depth, mask)

    with Image.open(path) as im:
        assert im.mode == "I;16"
        codes = np.asarray(im)
    assert codes[~mask].max() == 0
    assert codes[mask].min() == 1 and codes[mask].max() == 65535

    sidecar = json.loads((tmp_path / "depth.json").read_text())
    assert sidecar["units"] == "crop pixels"
    assert sidecar["scale"] == pytest.approx(encoding.scale)
    assert sidecar["offset"] == pytest.approx(encoding.offset)
    assert "offset + value * scale" in sidecar["formula"]

    back, back_mask = read_depth_png16(path)
    np.testing.assert_array_equal(back_mask, mask)
    span = float(depth[mask].max() - depth[mask].min())
    assert np.abs(back[mask] - depth[mask]).max() <= 0.51 * span / 65534 + 1e-4 * span / 65534 + 1e-5
    assert (back[~mask] == 0).all()
    # The sidecar alone decodes the raw codes.
    decoded = sidecar["offset"] + codes.astype(np.float64) * sidecar["scale"]
    np.testing.assert_allclose(decoded[mask], depth[mask], atol=span / 65534)


def test_depth_png16_constant_empty_and_nonfinite(tmp_path: Path) -> None:
    mask = np.zeros((5, 6), bool)
    mask[1:4, 2:5] = True
    flat = np.full((5, 6), 7.25, np.float32)
    write_depth_png16(tmp_path / "flat.png", flat, mask)
    back, back_mask = read_depth_png16(tmp_path / "flat.png")
    np.testing.assert_array_equal(back_mask, mask)
    np.testing.assert_allclose(back[mask], 7.25)

    holes = flat.copy()
    holes[2, 3] = np.nan
    write_depth_png16(tmp_path / "holes.png", holes, mask)
    _, holes_mask = read_depth_png16(tmp_path / "holes.png")
    assert not holes_mask[2, 3] and holes_mask.sum() == mask.sum() - 1

    write_depth_png16(tmp_path / "empty.png", flat, np.zeros_like(mask))
    _, empty_mask = read_depth_png16(tmp_path / "empty.png")
    assert not empty_mask.any()


def test_depth_colormap_near_is_warm(tmp_path: Path) -> None:
    depth, mask = sphere_depth()
    path = tmp_path / "depth_color.png"
    write_depth_colormap_png(path, depth, mask)
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert rgb.shape == (SIZE, SIZE, 3)
    assert (rgb[~mask] == 0).all()
    c = int(CENTRE)
    near, far = rgb[c, c], rgb[c, c + int(RADIUS) - 1]  # sphere top vs. its rim
    assert near.sum() > far.sum() + 200  # brighter
    assert near[0] > near[2] and near[0] - near[2] > far[0] - far[2]  # warmer


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def test_normals_png_round_trip(tmp_path: Path) -> None:
    normals, mask = sphere_normals()
    path = tmp_path / "normals.png"
    write_normals_png(path, normals, mask)
    rgb = np.asarray(Image.open(path))
    assert rgb.dtype == np.uint8 and rgb.shape == (SIZE, SIZE, 3)
    assert (rgb[~mask] == 0).all()
    c = int(round(CENTRE))
    assert np.abs(rgb[c, c].astype(int) - (128, 128, 255)).max() <= 4  # facing the viewer: blue

    back, back_mask = read_normals_png(path)
    np.testing.assert_array_equal(back_mask, mask)
    cos = (back[mask] * normals[mask]).sum(1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1.0


def test_mask_and_rgb_png_round_trip(tmp_path: Path) -> None:
    _, mask = sphere_depth()
    write_mask_png(tmp_path / "mask.png", mask)
    m = np.asarray(Image.open(tmp_path / "mask.png"))
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 255}
    np.testing.assert_array_equal(m == 255, mask)

    image = gradient_image()
    write_rgb_png(tmp_path / "crop.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "crop.png")), image)

    with pytest.raises(ValueError):
        write_rgb_png(tmp_path / "bad.png", image.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Point cloud and meshes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("deflate", ["default", "zlib"])
def test_png_encoder_gives_back_every_pixel(deflate: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import zlib

    from df2net.export import png
    from df2net.export.png import png_bytes

    if deflate == "zlib":  # the fallback where ISA-L cannot be imported
        monkeypatch.setattr(png, "_deflate", zlib.compress)
    rng = np.random.default_rng(3)
    images = [
        rng.integers(0, 256, (37, 53, 3)).astype(np.uint8),  # RGB noise: every filter byte wraps
        rng.integers(0, 256, (20, 9)).astype(np.uint8),  # grey
        rng.integers(0, 65536, (11, 17)).astype(np.uint16),  # 16-bit grey (big-endian in the file)
        np.zeros((1, 1, 3), np.uint8),
    ]
    for image in images:
        with Image.open(io.BytesIO(png_bytes(image))) as im:
            assert np.array_equal(np.asarray(im).astype(image.dtype), image)
    for bad in (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4), np.float32), np.zeros((0, 3, 3), np.uint8)):
        with pytest.raises(ValueError):
            png_bytes(bad)


def test_format_rows_matches_printf() -> None:
    from df2net.export.text_rows import format_rows

    rng = np.random.default_rng(5)
    cases = [
        ("f %d/%d/%d %d/%d/%d %d/%d/%d\n", np.repeat(rng.integers(1, 5000, (300, 3)), 3, axis=1)),  # mesh indices
        ("f %d//%d %d//%d\n", rng.integers(1, 90, (200, 4))),
        ("%d\n", np.arange(7)[:, None]),
        ("l %d %d\n", rng.integers(0, 10**7, (50, 2))),  # too many distinct values to look up
        ("v %.5f %.5f %.5f\n", rng.normal(0, 300, (500, 3))),
        ("vt %.6f %.6f\n", rng.random((500, 2))),
    ]
    for fmt, rows in cases:
        expected = (fmt * len(rows)) % tuple(rows.ravel().tolist())
        assert format_rows(fmt, rows) == expected, fmt


def test_ply_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(500, 3)).astype(np.float32) * 100
    colors = rng.integers(0, 256, size=(500, 3), dtype=np.uint8)
    path = tmp_path / "points.ply"
    write_ply(path, points, colors)
    assert b"format binary_little_endian 1.0" in path.read_bytes()[:200]
    cloud = trimesh.load(path)
    assert isinstance(cloud, trimesh.PointCloud)
    assert len(cloud.vertices) == 500
    np.testing.assert_allclose(cloud.vertices, points, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3], colors)


def test_obj_round_trip_with_texture(tmp_path: Path) -> None:
    mesh = sphere_mesh()
    texture = gradient_image()
    path = tmp_path / "mesh.obj"
    written = write_obj(path, mesh, texture)
    assert {p.name for p in written} == {"mesh.obj", "mesh.mtl", "mesh.png"}
    assert all(p.exists() for p in written) and _no_temp_files(tmp_path)
    assert "map_Kd mesh.png" in (tmp_path / "mesh.mtl").read_text()
    assert "mtllib mesh.mtl" in path.read_text()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "mesh.png")), texture)

    loaded = trimesh.load(path, process=False)
    assert isinstance(loaded, trimesh.Trimesh)
    assert loaded.visual.kind == "texture"
    assert loaded.visual.uv is not None and loaded.visual.uv.shape == (len(mesh.vertices), 2)
    assert len(loaded.vertices) == len(mesh.vertices) and len(loaded.faces) == len(mesh.faces)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-4)
    np.testing.assert_allclose(loaded.visual.uv, mesh.uv, atol=1e-5)
    assert loaded.visual.material.image.size == (SIZE, SIZE)
    # Faces wind counter-clockwise seen from the viewer: the surface faces +Z.
    assert loaded.face_normals[:, 2].mean() > 0.5
    # Also with trimesh's default processing (what most users get).
    assert trimesh.load(path).visual.kind == "texture"


def test_obj_without_texture_keeps_vertex_colours(tmp_path: Path) -> None:
    mesh = sphere_mesh()
    written = write_obj(tmp_path / "plain.obj", mesh, None)
    assert [p.name for p in written] == ["plain.obj"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.obj"]
    loaded = trimesh.load(tmp_path / "plain.obj", process=False)
    assert len(loaded.vertices) == len(mesh.vertices)
    np.testing.assert_allclose(loaded.visual.vertex_colors[:, :3], mesh.colors, atol=1)


def test_glb_round_trip(tmp_path: Path) -> None:
    mesh = sphere_mesh()
    texture = gradient_image()
    path = tmp_path / "mesh.glb"
    write_glb(path, mesh, texture)
    assert path.read_bytes()[:4] == b"glTF" and _no_temp_files(tmp_path)

    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == len(mesh.vertices) and len(loaded.faces) == len(mesh.faces)
    assert loaded.visual.kind == "texture"
    assert loaded.visual.uv.shape == (len(mesh.vertices), 2)
    np.testing.assert_allclose(loaded.visual.uv, mesh.uv, atol=1e-5)
    assert np.asarray(loaded.visual.material.baseColorTexture).shape[:2] == (SIZE, SIZE)
    # Same frame as the conventions (+Y up, +Z to the viewer) and the surface faces +Z.
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-3)
    assert loaded.face_normals[:, 2].mean() > 0.5
    scene = trimesh.load(path)  # as a scene, what viewers see: one textured geometry
    assert len(scene.geometry) == 1


def test_writers_leave_no_partial_files_when_they_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    depth, mask = sphere_depth()
    mesh = sphere_mesh()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export.png, "png_bytes", broken)  # every PNG goes through it
    with pytest.raises(OSError):
        write_depth_png16(tmp_path / "depth.png", depth, mask)
    with pytest.raises(OSError):
        write_normals_png(tmp_path / "normals.png", *sphere_normals())
    assert not (tmp_path / "depth.png").exists() and not (tmp_path / "normals.png").exists()
    monkeypatch.undo()

    monkeypatch.setattr(export.obj, "format_rows", broken)
    with pytest.raises(OSError):
        write_obj(tmp_path / "mesh.obj", mesh, gradient_image())
    assert not (tmp_path / "mesh.obj").exists()
    monkeypatch.undo()

    with pytest.raises(ValueError):
        write_ply(tmp_path / "points.ply", np.zeros((4, 3)), np.zeros((4, 3), np.float32))
    # Nothing at all is left: no temporary files, and no half set (sidecar, texture, material).
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Preview
# ---------------------------------------------------------------------------------------------


def _sphere_silhouette(image: np.ndarray) -> np.ndarray:
    return (image != 255).any(axis=2)


def test_render_shaded_sphere_brightest_where_normal_faces_light() -> None:
    mesh = sphere_mesh(96, 40.0)
    size = 128
    light = np.array([0.5, 0.5, 1.0])
    image = render_shaded(mesh, size, light)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8

    fg = _sphere_silhouette(image)
    assert (image[~fg] == 255).all()  # uniform white background
    assert not fg[0].any() and not fg[-1].any() and not fg[:, 0].any() and not fg[:, -1].any()

    # Where the unit normal equals the light, the image is brightest: the sphere's centre plus
    # its on-screen radius times (l_x, -l_y).
    rows, cols = np.nonzero(fg)
    cy, cx = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    r = (cols.max() - cols.min()) / 2
    lu = light / np.linalg.norm(light)
    expect = np.array([cy - r * lu[1], cx + r * lu[0]])
    gray = image.astype(float).mean(2)
    gray[~fg] = -1
    peak = np.argwhere(gray >= gray.max() - 1).mean(0)
    assert np.linalg.norm(peak - expect) < 0.08 * r
    # Everywhere inside, brightness is affine in the analytic Lambert term max(0, n . l).
    yy, xx = np.mgrid[0:size, 0:size]
    nx, ny = (xx - cx) / r, -(yy - cy) / r
    inside = fg & (nx**2 + ny**2 < 0.85**2)
    n = np.stack([nx, ny, np.sqrt(np.clip(1 - nx**2 - ny**2, 0, None))], -1)[inside]
    lambert = np.clip(n @ lu, 0, None)
    assert np.corrcoef(lambert, gray[inside])[0, 1] > 0.995
    assert gray[inside][lambert < 0.05].max() < 0.4 * gray.max()  # the unlit side is dark


def test_render_shaded_turn_keeps_scale_and_frame() -> None:
    mesh = sphere_mesh(96, 40.0)
    front = render_shaded(mesh, 128, (0, 0, 1))
    turned = render_shaded(mesh, 128, (0, 0, 1), view_rotation=45)
    f, t = _sphere_silhouette(front), _sphere_silhouette(turned)
    assert not t[0].any() and not t[:, 0].any() and not t[:, -1].any()
    assert f.any(axis=1).sum() == pytest.approx(t.any(axis=1).sum(), abs=2)  # same height
    # Turned 45 degrees about the vertical axis, the hemisphere shows part of its flat side.
    assert t.any(axis=0).sum() != f.any(axis=0).sum()


def test_make_preview_layout(tmp_path: Path) -> None:
    mesh = sphere_mesh()
    crop = gradient_image()
    panels = make_preview(crop, mesh)
    assert panels.shape == (SIZE, 3 * SIZE, 3) and panels.dtype == np.uint8
    # The third panel is the crop (but for its caption in the bottom-left corner).
    np.testing.assert_array_equal(panels[: SIZE // 2, 2 * SIZE :], crop[: SIZE // 2])
    unlabeled = make_preview(crop, mesh, labels=False)
    np.testing.assert_array_equal(unlabeled[:, 2 * SIZE :], crop)

    preview.write_preview(tmp_path / "preview.png", crop, mesh)
    assert np.asarray(Image.open(tmp_path / "preview.png")).shape == (SIZE, 3 * SIZE, 3)
