"""The textured mesh as binary glTF (``.glb``), texture embedded, assembled with numpy."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from df2net.export.common import MATERIAL, check_rgb, mesh_arrays, mesh_normals
from df2net.export.png import png_bytes
from df2net.io import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from df2net.geometry import Mesh

#: glTF buffer-view targets: vertex attributes and indices.
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963


def write_glb(path: str | Path, mesh: Mesh, texture: np.ndarray | None, *, texture_png: bytes | None = None) -> None:
    """Write a binary glTF (``.glb``) with smooth normals and the texture embedded as PNG
    (``texture_png`` when given: ``texture`` encoded already).

    The material is a matte PBR one (metallic 0, roughness 1, double-sided) whose base colour is
    the texture; without a texture, ``mesh.colors`` become vertex colours when set. glTF's frame
    is the conventions' frame, so the face looks at a viewer's default camera. The file is
    assembled directly with numpy (one mesh, one node), without building a trimesh scene.
    """
    vertices, faces, uv = mesh_arrays(mesh)
    if texture is not None:
        texture = check_rgb("texture", texture)
    positions = vertices.astype(np.float32)
    attributes: dict[str, np.ndarray] = {
        "POSITION": positions,
        "NORMAL": mesh_normals(mesh, vertices, faces).astype(np.float32),
    }
    colors = getattr(mesh, "colors", None)
    if texture is not None:
        # glTF puts the texture origin top-left, OBJ (and Mesh.uv) bottom-left.
        attributes["TEXCOORD_0"] = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1).astype(np.float32)
    elif colors is not None:
        rgb = np.asarray(colors, np.uint8)[:, :3]
        attributes["COLOR_0"] = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "df2net"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "face", "mesh": 0}],
        "accessors": [],
        "bufferViews": [],
    }
    chunks: list[bytes] = []
    offset = 0

    def add_view(data: bytes, target: int | None = None) -> int:
        nonlocal offset
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        gltf["bufferViews"].append(view)
        padded = data + b"\0" * (-len(data) % 4)
        chunks.append(padded)
        offset += len(padded)
        return len(gltf["bufferViews"]) - 1

    def add_accessor(array: np.ndarray, target: int, bounds: bool = False, normalized: bool = False) -> int:
        component = {np.dtype(np.float32): 5126, np.dtype(np.uint32): 5125, np.dtype(np.uint8): 5121}
        kind = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}[1 if array.ndim == 1 else array.shape[1]]
        accessor = {
            "bufferView": add_view(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(), target),
            "componentType": component[array.dtype],
            "count": len(array),
            "type": kind,
        }
        if normalized:
            accessor["normalized"] = True
        if bounds and len(array):
            accessor["min"] = np.atleast_1d(array.min(axis=0)).tolist()
            accessor["max"] = np.atleast_1d(array.max(axis=0)).tolist()
        gltf["accessors"].append(accessor)
        return len(gltf["accessors"]) - 1

    primitive: dict = {"mode": 4, "attributes": {}}
    primitive["indices"] = add_accessor(faces.astype(np.uint32).ravel(), _ELEMENT_ARRAY_BUFFER, bounds=True)
    for name, array in attributes.items():
        primitive["attributes"][name] = add_accessor(
            array, _ARRAY_BUFFER, bounds=name == "POSITION", normalized=name == "COLOR_0"
        )
    if texture is not None:
        png = texture_png if texture_png is not None else png_bytes(texture)
        gltf["images"] = [{"bufferView": add_view(png), "mimeType": "image/png"}]
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
        gltf["textures"] = [{"source": 0, "sampler": 0}]
        pbr = {"baseColorTexture": {"index": 0}, "baseColorFactor": [1.0, 1.0, 1.0, 1.0]}
        gltf["materials"] = [
            {
                "name": MATERIAL,
                "pbrMetallicRoughness": pbr | {"metallicFactor": 0.0, "roughnessFactor": 1.0},
                "doubleSided": True,  # a face is an open surface: keep it visible when orbited behind
            }
        ]
        primitive["material"] = 0
    gltf["meshes"] = [{"name": "face", "primitives": [primitive]}]
    gltf["buffers"] = [{"byteLength": offset}]

    json_chunk = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    json_chunk += b" " * (-len(json_chunk) % 4)
    binary = b"".join(chunks)
    total = 12 + 8 + len(json_chunk) + 8 + len(binary)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(struct.pack("<4sII", b"glTF", 2, total))
        fh.write(struct.pack("<I4s", len(json_chunk), b"JSON"))
        fh.write(json_chunk)
        fh.write(struct.pack("<I4s", len(binary), b"BIN\0"))
        fh.write(binary)
