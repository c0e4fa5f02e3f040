"""Writers of the output files: depth, normals, masks, point clouds and textured meshes.

Every writer is one small function that takes arrays in the frames of ``docs/conventions.md``
and writes through :func:`df2net.io.atomic_path`, so a failed write leaves nothing under the
final name. Writers are independent of each other; choosing which to run is the caller's job.

3D files keep the conventions' frame: ``X = u`` (right), ``Y = -v`` (up), ``Z = depth`` (toward
the viewer), all in crop pixels. That is also glTF's frame (+Y up, the default camera looking
down -Z), so a mesh opens in a viewer facing the camera.

Each kind of file has its own module; this package only gathers their names:

- :mod:`df2net.export.depth`: ``depth.npy``, the 16-bit depth PNG and its sidecar, the colour map;
- :mod:`df2net.export.images`: the normal map, the mask and RGB pictures;
- :mod:`df2net.export.ply`: the point cloud;
- :mod:`df2net.export.obj`: the OBJ mesh with its material and texture
  (its numbers printed by :mod:`df2net.export.text_rows`);
- :mod:`df2net.export.glb`: the binary glTF mesh;
- :mod:`df2net.export.png`: the PNG encoder every picture goes through;
- :mod:`df2net.export.common`: what they share (PNG level, all-or-nothing sets, checks).
"""

from __future__ import annotations

from df2net.export.png import PNG_COMPRESS_LEVEL
from df2net.export.depth import (
    DEPTH16_MAX,
    DepthEncoding,
    depth_to_colormap,
    read_depth_png16,
    write_depth_colormap_png,
    write_depth_npy,
    write_depth_png16,
)
from df2net.export.glb import write_glb
from df2net.export.images import read_normals_png, write_mask_png, write_normals_png, write_rgb_png
from df2net.export.obj import write_obj
from df2net.export.ply import write_ply

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
