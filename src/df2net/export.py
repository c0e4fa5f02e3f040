"""Writers of the output files: depth, normals, masks, point clouds and textured meshes.

Every writer is one small function that takes arrays in the frames of ``docs/conventions.md``
and writes through :func:`df2net.io.atomic_path`, so a failed write leaves nothing under the
final name. Writers are independent of each other; choosing which to run is the caller's job.

3D files keep the conventions' frame: ``X = u`` (right), ``Y = -v`` (up), ``Z = depth`` (toward
the viewer), all in crop pixels. That is also glTF's frame (+Y up, the default camera looking
down -Z), so a mesh opens in a viewer facing the camera.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from df2net.io import atomic_path, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from df2net.geometry import Mesh

__all__ = [
    "DepthEncoding",
    "depth_to_colormap",
    "read_depth_png16",
    "read_normals_png",
    "write_depth_colormap_png",
    "write_depth_npy",
    "write_depth_png16",
    "write_glb",
    "write_mask_png",
    "write_normals_png",
    "write_obj",
    "write_ply",
    "write_rgb_png",
]

#: Largest code of the 16-bit depth PNG; face pixels use 1..DEPTH16_MAX, background is 0.
DEPTH16_MAX: int = 65535

#: zlib level of every PNG written (0-9). Level 1 encodes a 512x512 crop about four times
#: faster than Pillow's default 6, for files 10-25 % larger.
PNG_COMPRESS_LEVEL: int = 1


# --------------------------------------------------------------------------------------------
# Depth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthEncoding:
    """How a 16-bit depth PNG decodes: ``depth = offset + value * scale`` where ``value > 0``.

    Attributes:
        scale: crop pixels per code step.
        offset: depth (crop pixels) of the code 0, which itself marks background.
        units: the unit of the decoded depth.
        formula: the decoding rule, spelled out for readers of the JSON sidecar.
    """

    scale: float
    offset: float
    units: str = "crop pixels"
    formula: str = "depth = offset + value * scale; value 0 = background"

    def decode(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(depth (H, W) float32, 0 on background; mask (H, W) bool)`` from the PNG codes."""
        values = np.asarray(values)
        mask = values > 0
        depth = np.where(mask, self.offset + values.astype(np.float64) * self.scale, 0.0)
        return depth.astype(np.float32), mask


def write_depth_npy(path: str | Path, depth: np.ndarray) -> None:
    """Write ``depth`` ``(H, W)`` as a float32 ``.npy`` file (crop pixels, larger = nearer)."""
    depth = np.asarray(depth)
    _check_2d("depth", depth)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # A file handle, not a name: np.save would append ".npy" to names lacking it.
        np.save(fh, depth.astype(np.float32, copy=False))


def write_depth_png16(path: str | Path, depth: np.ndarray, mask: np.ndarray) -> DepthEncoding:
    """Write depth as a 16-bit grayscale PNG plus a JSON sidecar ``<stem>.json`` that decodes it.

    The masked depth range ``[min, max]`` maps linearly to the codes ``1..65535``; 0 marks
    background (outside ``mask``, or non-finite depth). Decoding error is at most half a step,
    ``(max - min) / 65534 / 2``.

    Args:
        path: the PNG to write; the sidecar goes beside it with the suffix ``.json``.
        depth: ``(H, W)`` depth in crop pixels.
        mask: ``(H, W)`` bool, True on the face.

    Returns:
        The :class:`DepthEncoding` written to the sidecar.
    """
    depth = np.asarray(depth, dtype=np.float64)
    _check_2d("depth", depth)
    valid = _check_mask(mask, depth.shape) & np.isfinite(depth)
    codes = np.zeros(depth.shape, np.uint16)
    if valid.any():
        lo, hi = float(depth[valid].min()), float(depth[valid].max())
        scale = (hi - lo) / (DEPTH16_MAX - 1) if hi > lo else 1.0
        offset = lo - scale  # so that code 1 decodes to lo
        codes[valid] = np.rint((depth[valid] - offset) / scale).clip(1, DEPTH16_MAX).astype(np.uint16)
    else:
        scale, offset = 1.0, 0.0
    encoding = DepthEncoding(scale=scale, offset=offset)

    path = Path(path)
    sidecar = path.with_suffix(".json")
    meta = asdict(encoding) | {"png": path.name, "background": 0, "shape": list(depth.shape)}
    with _all_or_nothing() as written:
        write_text_atomic(sidecar, json.dumps(meta, indent=2) + "\n")
        written.append(sidecar)
        with atomic_path(path) as tmp:
            Image.fromarray(codes).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return encoding


def read_depth_png16(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a depth PNG written by :func:`write_depth_png16` (and its ``.json`` sidecar).

    Returns:
        ``depth`` ``(H, W)`` float32 in crop pixels (0 on background) and ``mask`` ``(H, W)`` bool.
    """
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    encoding = DepthEncoding(scale=float(meta["scale"]), offset=float(meta["offset"]))
    with Image.open(path) as im:
        codes = np.asarray(im).astype(np.uint16)
    return encoding.decode(codes)


# Matplotlib's "inferno" (perceptually uniform, dark to bright yellow) as a degree-6 polynomial
# per channel: Matt Zucker's CC0 fit. Row k holds the coefficients of t**k for (R, G, B).
_INFERNO = np.array(
    [
        [0.0002189403691192265, 0.001651004631001012, -0.01948089843709184],
        [0.1065134194856116, 0.5639564367884091, 3.932712388889277],
        [11.60249308247187, -3.972853965665698, -15.9423941062914],
        [-41.70399613139459, 17.43639888205313, 44.35414519872813],
        [77.162935699427, -33.40235894210092, -81.80730925738993],
        [-71.31942824499214, 32.62606426397723, 73.20951985803202],
        [25.13112622477341, -12.24266895238567, -23.07032500287172],
    ]
)

#: The part of the colormap used: far depth gets the dark purple end, near the pale yellow.
_COLORMAP_RANGE = (0.12, 0.98)


def depth_to_colormap(
    depth: np.ndarray,
    mask: np.ndarray,
    percentiles: tuple[float, float] = (0.5, 99.9),
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Colour depth with a perceptual colormap (inferno): near = warm and bright, far = dark.

    The range is set by ``percentiles`` of the masked depth, so a few outliers on the face's
    border do not wash out the rest; ``value_range`` (lo, hi) fixes it instead, so several maps
    can share one scale.

    Returns:
        ``(H, W, 3)`` uint8 RGB, black outside ``mask``.
    """
    depth = np.asarray(depth, dtype=np.float64)
    _check_2d("depth", depth)
    valid = _check_mask(mask, depth.shape) & np.isfinite(depth)
    out = np.zeros((*depth.shape, 3), np.uint8)
    if not valid.any():
        return out
    lo, hi = value_range if value_range is not None else np.percentile(depth[valid], percentiles)
    t = (depth[valid] - lo) / (hi - lo) if hi > lo else np.full(int(valid.sum()), 0.5)
    a, b = _COLORMAP_RANGE
    t = a + (b - a) * np.clip(t, 0.0, 1.0)
    rgb = np.zeros((t.size, 3))
    for coeff in _INFERNO[::-1]:  # Horner
        rgb = rgb * t[:, None] + coeff
    out[valid] = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def write_depth_colormap_png(path: str | Path, depth: np.ndarray, mask: np.ndarray) -> None:
    """Write depth as a colour PNG for people to look at (see :func:`depth_to_colormap`)."""
    write_rgb_png(path, depth_to_colormap(depth, mask))


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def write_normals_png(path: str | Path, normals: np.ndarray, mask: np.ndarray) -> None:
    """Write unit normals ``(H, W, 3)`` as RGB ``(n + 1) / 2 * 255`` (X red, Y green, Z blue).

    Pixels outside ``mask`` (or with non-finite normals) are black.
    """
    from df2net.geometry import normals_to_rgb  # imported here: geometry pulls in torch

    normals = np.asarray(normals, dtype=np.float64)
    if normals.ndim != 3 or normals.shape[2] != 3:
        raise ValueError(f"normals must be (H, W, 3), got {normals.shape}")
    finite = np.isfinite(normals).all(axis=2)
    valid = _check_mask(mask, normals.shape[:2]) & finite
    write_rgb_png(path, normals_to_rgb(np.where(finite[..., None], normals, 0.0), valid))


def read_normals_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a normal map written by :func:`write_normals_png`.

    Returns:
        ``normals`` ``(H, W, 3)`` float32 unit vectors (0 on background) and ``mask`` ``(H, W)``
        bool (pixels that are not black; a visible normal has ``n_z > 0``, so blue > 127).
    """
    from df2net.geometry import rgb_to_normals

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    mask = rgb.any(axis=2)
    return rgb_to_normals(rgb, mask), mask


def write_mask_png(path: str | Path, mask: np.ndarray) -> None:
    """Write a bool mask ``(H, W)`` as an 8-bit grayscale PNG, 255 on the face and 0 elsewhere."""
    mask = np.asarray(mask)
    _check_2d("mask", mask)
    with atomic_path(path) as tmp:
        codes = np.where(mask.astype(bool), 255, 0).astype(np.uint8)
        Image.fromarray(codes).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def write_rgb_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB image ``(H, W, 3)`` uint8 as a PNG."""
    rgb = _check_rgb("image", rgb)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


# --------------------------------------------------------------------------------------------
# Point cloud and meshes
# --------------------------------------------------------------------------------------------


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> None:
    """Write a point cloud as binary little-endian PLY: float32 ``x y z`` and uchar ``red green blue``.

    Args:
        points: ``(N, 3)`` positions (the conventions' frame, crop pixels).
        colors: ``(N, 3)`` uint8 RGB, or None for a cloud without colour.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {points.shape}")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != points.shape or colors.dtype != np.uint8:
            raise ValueError(
                f"colors must be (N, 3) uint8 like points {points.shape}, got {colors.shape} {colors.dtype}"
            )
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    data = np.empty(len(points), dtype=fields)
    for i, axis in enumerate("xyz"):
        data[axis] = points[:, i]
    if colors is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            data[channel] = colors[:, i]
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment df2net point cloud: X right, Y up, Z toward the viewer, crop pixels",
        f"element vertex {len(points)}",
        *(f"property {'float' if t == '<f4' else 'uchar'} {name}" for name, t in fields),
        "end_header",
    ]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(data.tobytes())


def write_obj(path: str | Path, mesh: Mesh, texture: np.ndarray | None) -> list[Path]:
    """Write a Wavefront OBJ with smooth normals, its material and its texture beside it.

    For ``DIR/name.obj`` this writes ``DIR/name.png`` (the texture), ``DIR/name.mtl`` (one
    material whose ``map_Kd`` names the PNG) and the OBJ (``mtllib name.mtl``, a ``vt`` per
    vertex from ``mesh.uv``); every reference is a bare file name, so the three files move
    together. The OBJ is written last, so its presence means the set is complete.

    With ``texture=None`` only the OBJ is written, with per-vertex colours (``v x y z r g b``)
    when ``mesh.colors`` is set.

    Args:
        path: the ``.obj`` file.
        mesh: the :class:`df2net.geometry.Mesh` (vertices in the conventions' frame).
        texture: ``(H, W, 3)`` uint8 RGB that ``mesh.uv`` indexes (the crop), or None.

    Returns:
        The files written, OBJ first.
    """
    path = Path(path)
    vertices, faces, uv = _mesh_arrays(mesh)
    if texture is not None:
        texture = _check_rgb("texture", texture)
    with _all_or_nothing() as written:
        if texture is not None:
            png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
            with atomic_path(png) as tmp:
                Image.fromarray(texture).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
            written.append(png)
            write_text_atomic(
                mtl,
                "# df2net face material\n"
                f"newmtl {_MATERIAL}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
                f"d 1.0\nillum 1\nmap_Kd {png.name}\n",
            )
            written.append(mtl)
        mtl_name = mtl.name if texture is not None else None
        write_text_atomic(path, _obj_text(mesh, vertices, faces, uv, mtl_name))
    return [path, *written[::-1]]


def _obj_text(
    mesh: Mesh, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, mtl_name: str | None
) -> str:
    """The OBJ file's text; textured (``vt``, ``usemtl``) when ``mtl_name`` is given."""
    textured = mtl_name is not None
    normals = _smooth_normals(vertices, faces)
    lines = ["# df2net face mesh: X right, Y up, Z toward the viewer; units: crop pixels"]
    if textured:
        lines.append(f"mtllib {mtl_name}")
    lines.append("o face")
    text = [("\n".join(lines) + "\n")]

    colors = getattr(mesh, "colors", None)
    if not textured and colors is not None:
        vc = np.concatenate([vertices, np.asarray(colors, np.float64) / 255.0], axis=1)
        text.append(_format_rows("v %.5f %.5f %.5f %.4f %.4f %.4f\n", vc))
    else:
        text.append(_format_rows("v %.5f %.5f %.5f\n", vertices))
    if textured:
        text.append(_format_rows("vt %.6f %.6f\n", uv))
    text.append(_format_rows("vn %.5f %.5f %.5f\n", normals))
    if textured:
        text.append(f"usemtl {_MATERIAL}\n")
    f1 = faces + 1  # OBJ indices are 1-based; v, vt and vn share them
    if textured:
        text.append(_format_rows("f %d/%d/%d %d/%d/%d %d/%d/%d\n", np.repeat(f1, 3, axis=1)))
    else:
        text.append(_format_rows("f %d//%d %d//%d %d//%d\n", np.repeat(f1, 2, axis=1)))
    return "".join(text)


def write_glb(path: str | Path, mesh: Mesh, texture: np.ndarray | None) -> None:
    """Write a binary glTF (``.glb``) with smooth normals and the texture embedded as PNG.

    The material is a matte PBR one (metallic 0, roughness 1, double-sided) whose base colour is
    the texture; without a texture, ``mesh.colors`` become vertex colours when set. glTF's frame
    is the conventions' frame, so the face looks at a viewer's default camera. The file is
    assembled directly with numpy (one mesh, one node), without building a trimesh scene.
    """
    vertices, faces, uv = _mesh_arrays(mesh)
    if texture is not None:
        texture = _check_rgb("texture", texture)
    positions = vertices.astype(np.float32)
    attributes: dict[str, np.ndarray] = {
        "POSITION": positions,
        "NORMAL": _smooth_normals(vertices, faces).astype(np.float32),
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
        gltf["images"] = [{"bufferView": add_view(_png_bytes(texture)), "mimeType": "image/png"}]
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
        gltf["textures"] = [{"source": 0, "sampler": 0}]
        pbr = {"baseColorTexture": {"index": 0}, "baseColorFactor": [1.0, 1.0, 1.0, 1.0]}
        gltf["materials"] = [
            {
                "name": _MATERIAL,
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


#: glTF buffer-view targets: vertex attributes and indices.
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963

#: Name of the one material of exported meshes.
_MATERIAL = "face"


def _png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB image encoded as PNG (at :data:`PNG_COMPRESS_LEVEL`)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


@contextlib.contextmanager
def _all_or_nothing() -> Iterator[list[Path]]:
    """Collect the files a multi-file writer has finished; delete them if a later one fails."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for p in written:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        raise


def _mesh_arrays(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices (N, 3) float64, faces (M, 3) int64, uv (N, 2) float64)``, checked."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    uv = np.asarray(mesh.uv, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"mesh.vertices must be (N, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"mesh.faces must be (M, 3), got {faces.shape}")
    if uv.shape != (len(vertices), 2):
        raise ValueError(f"mesh.uv must be ({len(vertices)}, 2), got {uv.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError("mesh.faces index vertices that do not exist")
    return vertices, faces, uv


def _smooth_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (CCW winding = the side they face), ``(N, 3)``."""
    from df2net.render import vertex_normals

    return vertex_normals(vertices, faces)


#: A conversion of :func:`_format_rows`: ``%d`` or ``%.<digits>f``.
_CONVERSION = re.compile(r"%(?:\.(\d+))?([df])")

#: Largest magnitude :func:`_format_rows` formats with integer arithmetic (below 2**53 / 10**6).
_FAST_LIMIT = 1e9


def _format_rows(fmt: str, rows: np.ndarray) -> str:
    """Format every row of a 2D array with ``fmt`` (one ``%`` per column), concatenated.

    ``fmt`` may hold only ``%d`` and ``%.Nf`` conversions between literal text (no ``%%``).
    Equivalent to ``(fmt * len(rows)) % tuple(rows.ravel())`` but vectorised, about five times
    faster for a face mesh: each value is rounded to a whole number of its last decimal, its
    digits are cut out with integer arithmetic into a table of characters, one row per row, and
    the table is joined without its padding. (A value exactly halfway between two printed
    decimals may round the other way, and ``-0.0`` prints without its sign.) Non-finite or very
    large values fall back to Python's ``%``.
    """
    rows = np.asarray(rows)
    if len(rows) == 0:
        return ""
    specs = [(kind, int(digits or 6) if kind == "f" else 0) for digits, kind in _CONVERSION.findall(fmt)]
    literals = _CONVERSION.split(fmt)[::3]  # split() interleaves the two groups of each match
    if rows.ndim != 2 or rows.shape[1] != len(specs) or "%" in "".join(literals):
        raise ValueError(f"format {fmt!r} does not fit rows of shape {rows.shape}")
    if rows.dtype.kind == "f" and (not np.isfinite(rows).all() or np.abs(rows).max() >= _FAST_LIMIT):
        return (fmt * len(rows)) % tuple(rows.ravel().tolist())
    n = len(rows)
    # The characters of every column, computed together for the columns of one kind, laid out
    # character-major ((W, N) planes) so that every step reads and writes contiguous memory.
    chars: dict[int, np.ndarray] = {}
    for key in sorted(set(specs)):
        cols = [i for i, spec in enumerate(specs) if spec == key]
        kind, decimals = key
        block = np.ascontiguousarray(rows[:, cols].T)  # (C, N)
        if kind == "f":
            scaled = np.rint(block * 10.0**decimals).astype(np.int64)
        else:
            scaled = block.astype(np.int64) if block.dtype.kind in "iub" else np.trunc(block).astype(np.int64)
        low, high = int(scaled.min()), int(scaled.max())
        if low >= 0 and high < scaled.size // 2:
            # Small non-negative integers (mesh indices): format each value once, then look up.
            text = _fixed_point_chars(np.arange(high + 1)[None], decimals)[:, 0][:, scaled]
        else:
            text = _fixed_point_chars(scaled, decimals)  # (W, C, N)
        for j, i in enumerate(cols):
            chars[i] = text[:, j]
    widths = [len(lit) for lit in literals] + [c.shape[0] for c in chars.values()]
    table = np.empty((sum(widths), n), np.uint8)
    at = 0
    for i, literal in enumerate(literals):
        for code in literal.encode("ascii"):
            table[at] = code
            at += 1
        if i < len(specs):
            table[at : at + chars[i].shape[0]] = chars[i]
            at += chars[i].shape[0]
    table = np.ascontiguousarray(table.T)  # one row of text per row
    return table[table != 0].tobytes().decode("ascii")


def _fixed_point_chars(scaled: np.ndarray, decimals: int) -> np.ndarray:
    """ASCII codes of ``scaled / 10**decimals`` printed with ``decimals`` decimals.

    ``scaled`` is an int64 array ``(C, N)``; the result is uint8 ``(W, C, N)``: character ``k``
    of every number, each number right-aligned and padded on the left with 0 bytes (the caller
    drops them): an optional ``-``, the integer digits (at least one), then ``.`` and the
    decimals when ``decimals > 0``.
    """
    magnitude = np.abs(scaled)
    width = max(len(str(int(magnitude.max()))), decimals + 1)
    digits = np.empty((width, *scaled.shape), np.uint8)
    rest = magnitude.copy()
    for k in range(width - 1, -1, -1):
        digits[k] = rest % 10
        rest //= 10
    digits += ord("0")
    # Blank the leading zeros, keeping at least one digit before the decimal point.
    length = np.full(scaled.shape, decimals + 1, np.int64)
    for k in range(decimals + 1, width):
        length += magnitude >= 10**k
    digits *= np.arange(width).reshape(width, 1, 1) >= (width - length)[None]
    sign = np.where(scaled < 0, ord("-"), 0).astype(np.uint8)
    parts = [sign[None], digits[: width - decimals]]
    if decimals:
        parts += [np.full((1, *scaled.shape), ord("."), np.uint8), digits[width - decimals :]]
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _check_2d(name: str, array: np.ndarray) -> None:
    if array.ndim != 2:
        raise ValueError(f"{name} must be (H, W), got {array.shape}")


def _check_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask must be {tuple(shape)}, got {mask.shape}")
    return mask.astype(bool)


def _check_rgb(name: str, rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{name} must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    return np.ascontiguousarray(rgb)
