"""The whole inference path: photo -> faces -> files, through the API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from df2net.config import CROP_SIZE
from df2net.errors import InputError, WeightsError
from df2net.outputs import ALL_FORMATS, parse_formats


@pytest.fixture(scope="module")
def reconstructor(random_weights):
    from df2net import Reconstructor

    return Reconstructor(weights=random_weights)


@pytest.fixture(scope="module")
def sample_faces(reconstructor, sample_photo):
    return reconstructor(sample_photo)


def test_sample_photo_gives_one_face_with_consistent_arrays(sample_faces) -> None:
    assert len(sample_faces) == 1
    face = sample_faces[0]
    assert face.crop.shape == (CROP_SIZE, CROP_SIZE, 3) and face.crop.dtype == np.uint8
    assert face.mask.shape == (CROP_SIZE, CROP_SIZE) and face.mask.dtype == bool
    assert 0.1 < face.mask.mean() < 0.5
    assert face.landmarks.shape == (68, 2) and face.landmarks_image.shape == (68, 2)
    for name in ("dense", "fine", "finer"):
        depth = face.stages[name]
        assert depth.shape == (CROP_SIZE, CROP_SIZE) and depth.dtype == np.float32
        assert np.all(depth[~face.mask] == 0)
        assert np.isfinite(depth).all() and depth[face.mask].min() == 0
    norms = np.linalg.norm(face.normals[face.mask], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)
    # The landmarks of the crop lie inside it, and the eyes above the chin.
    assert np.all((face.landmarks > 0) & (face.landmarks < CROP_SIZE))
    assert face.landmarks[36:48, 1].mean() < face.landmarks[8, 1]


def test_save_writes_every_format_and_they_load(sample_faces, tmp_path: Path) -> None:
    face = sample_faces[0]
    files = {p.name for p in face.save(tmp_path / "face0")}
    expected = {
        "depth.npy", "depth.png", "depth.json", "depth_color.png", "normals.png", "crop.png",
        "mask.png", "points.ply", "mesh.obj", "mesh.mtl", "mesh.png", "mesh.glb", "preview.png",
        "metadata.json",
    }
    assert expected <= files
    folder = tmp_path / "face0"
    np.testing.assert_array_equal(np.load(folder / "depth.npy"), face.depth)
    from df2net.export import read_depth_png16

    depth16, mask16 = read_depth_png16(folder / "depth.png")
    np.testing.assert_array_equal(mask16, face.mask & (face.depth > 0) | (face.mask & (face.depth == 0)) & mask16)
    assert np.abs(depth16[face.mask] - face.depth[face.mask]).max() <= face.depth.max() / 65534 + 1e-4
    glb = trimesh.load(folder / "mesh.glb", force="mesh")
    obj = trimesh.load(folder / "mesh.obj", force="mesh", process=False)
    assert len(obj.vertices) > 10_000 and len(glb.faces) == len(obj.faces)
    ply = trimesh.load(folder / "points.ply")
    assert len(ply.vertices) == int(face.mask.sum())
    meta = json.loads((folder / "metadata.json").read_text())
    assert len(meta["landmarks_image"]) == 68 and len(meta["box_xyxy"]) == 4
    assert meta["versions"]["df2net"] and "network_s" in meta["timings_s"]
    assert not list(tmp_path.glob(".*part*")), "temporary files were left behind"


def test_formats_subset_writes_only_those(sample_faces, tmp_path: Path) -> None:
    files = {p.name for p in sample_faces[0].save(tmp_path / "f", parse_formats("depth,normals"))}
    assert files == {"depth.npy", "normals.png"}
    assert parse_formats(None) == set(ALL_FORMATS)
    with pytest.raises(ValueError, match="unknown format"):
        parse_formats("depth,stl")


def test_to_mesh_is_a_textured_trimesh_in_crop_units(sample_faces) -> None:
    face = sample_faces[0]
    mesh = face.to_mesh()
    assert isinstance(mesh, trimesh.Trimesh)
    assert mesh.visual.kind == "texture"
    extent = mesh.vertices.max(0) - mesh.vertices.min(0)
    assert 100 < extent[0] < CROP_SIZE and 100 < extent[1] < CROP_SIZE


def test_array_input_and_rgba(reconstructor, sample_photo) -> None:
    from PIL import Image

    rgb = np.asarray(Image.open(sample_photo).convert("RGB"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    a = reconstructor(rgb, source="array")
    b = reconstructor(rgba)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a[0].depth, b[0].depth, atol=1e-4)
    with pytest.raises(InputError, match="dtype"):
        reconstructor(rgb.astype(np.float32))


def test_faces_of_one_photo_are_batched_like_single_faces(reconstructor, sample_photo) -> None:
    from dataclasses import replace

    from df2net.face import detect_and_crop
    from df2net.io import load_image

    crop = detect_and_crop(load_image(sample_photo).rgb, "sample")[0]
    mirrored = replace(crop, image=np.ascontiguousarray(crop.image[:, ::-1]), mask=crop.mask[:, ::-1].copy())
    batched = reconstructor.reconstruct_crops([crop, mirrored, crop], "sample")
    single = reconstructor.reconstruct_crops([mirrored], "sample")[0]
    assert [f.index for f in batched] == [0, 1, 2]
    np.testing.assert_allclose(batched[1].depth, single.depth, atol=1e-3)
    np.testing.assert_allclose(batched[0].depth, batched[2].depth, atol=1e-4)


def test_no_face_is_a_one_line_input_error(reconstructor) -> None:
    blank = np.full((300, 300, 3), 128, np.uint8)
    with pytest.raises(InputError) as info:
        reconstructor(blank, source="blank.png")
    assert str(info.value) == "blank.png: no face found"


def test_missing_weights_say_so(monkeypatch) -> None:
    from df2net import Reconstructor
    from df2net.model import weights

    monkeypatch.setattr(weights, "default_weights_path", lambda: None)
    with pytest.raises(WeightsError, match="no weights"):
        Reconstructor()
    with pytest.raises(WeightsError, match="nope.safetensors"):
        Reconstructor(weights="nope.safetensors")
