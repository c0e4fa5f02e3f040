"""Depth files: float32 ``.npy``, 16-bit PNG with its JSON sidecar, and the colour-mapped PNG."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from df2net.export.common import all_or_nothing, check_2d, check_mask
from df2net.export.images import write_rgb_png
from df2net.export.png import write_png
from df2net.io import atomic_path, write_text_atomic

#: Largest code of the 16-bit depth PNG; face pixels use 1..DEPTH16_MAX, background is 0.
DEPTH16_MAX: int = 65535


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
    check_2d("depth", depth)
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
    check_2d("depth", depth)
    valid = check_mask(mask, depth.shape) & np.isfinite(depth)
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
    with all_or_nothing() as written:
        write_text_atomic(sidecar, json.dumps(meta, indent=2) + "\n")
        written.append(sidecar)
        write_png(path, codes)
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
    check_2d("depth", depth)
    valid = check_mask(mask, depth.shape) & np.isfinite(depth)
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
