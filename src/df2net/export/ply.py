"""The point cloud as binary PLY."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from df2net.io import atomic_path


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
