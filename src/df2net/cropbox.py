"""The square crop box, turned or not, and the maps between image and crop pixels.

A crop box ``(x0, y0, side, angle)`` is the square whose outer top-left corner is the image point
``(x0, y0)`` and whose side is ``side`` image pixels, turned by ``angle`` degrees about its centre
``c = (x0 + side / 2, y0 + side / 2)``. The crop's ``u`` axis points along the image direction
``(cos angle, sin angle)`` and its ``v`` axis along ``(-sin angle, cos angle)``; as ``v`` points
down in an image, a positive angle turns the square clockwise on screen (a face whose eye line
falls to the right is levelled by a positive angle). Crop pixel ``(u, v)`` of a crop of ``S``
pixels has its centre at image point ``c + R(angle) ((u + 0.5) side / S - side / 2, (v + 0.5) side / S - side / 2)``.
A three-element box ``(x0, y0, side)`` is the same with angle 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

#: ``(x0, y0, side, angle_deg)``; see the module docstring.
CropBox = tuple[float, float, float, float]


def as_crop_box(box: Sequence[float]) -> CropBox:
    """A 3- or 4-element box as the 4-tuple ``(x0, y0, side, angle_deg)`` of floats."""
    if len(box) == 3:
        x0, y0, side = box
        angle = 0.0
    elif len(box) == 4:
        x0, y0, side, angle = box
    else:
        raise ValueError(f"a crop box is (x0, y0, side[, angle]), got {len(box)} values")
    return float(x0), float(y0), float(side), float(angle)


def rotation(angle_deg: float) -> np.ndarray:
    """``(2, 2)`` matrix whose columns are the turned frame's ``u`` and ``v`` axes in the image."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def box_around(centre: Sequence[float], side: float, angle_deg: float = 0.0) -> CropBox:
    """The crop box of the square of ``side`` centred on the image point ``centre``."""
    return float(centre[0]) - 0.5 * side, float(centre[1]) - 0.5 * side, float(side), float(angle_deg)


def box_corners(box: Sequence[float], angle_deg: float = 0.0) -> np.ndarray:
    """``(4, 2)`` image corners (top-left, top-right, bottom-right, bottom-left) of the box
    ``(x0, y0, x1, y1)`` upright in the frame turned by ``angle_deg`` about its centre."""
    x0, y0, x1, y1 = (float(c) for c in box)
    centre = np.array([0.5 * (x0 + x1), 0.5 * (y0 + y1)])
    local = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]) - centre
    return local @ rotation(angle_deg).T + centre



class TurnedBox:
    """Geometry of a ``box`` ``(x0, y0, x1, y1)`` turned by ``angle`` degrees about its centre.

    Shared by the faces a detector keeps and those it skips; the subclass holds ``box`` and ``angle``.
    """

    box: Sequence[float]
    angle: float

    @property
    def side(self) -> float:
        """Side of the (near-square) box in pixels: the mean of its width and height."""
        x0, y0, x1, y1 = (float(c) for c in self.box)
        return 0.5 * ((x1 - x0) + (y1 - y0))

    @property
    def centre(self) -> np.ndarray:
        """``(2,)`` image point at the centre of the box."""
        x0, y0, x1, y1 = (float(c) for c in self.box)
        return np.array([0.5 * (x0 + x1), 0.5 * (y0 + y1)])

    def corners(self) -> np.ndarray:
        """``(4, 2)`` image points of the turned box's corners, from its top-left, clockwise."""
        return box_corners(np.asarray(self.box, np.float64), self.angle)


def crop_to_image(points: np.ndarray, crop_box: Sequence[float], size: int) -> np.ndarray:
    """Crop-frame points ``(..., 2)`` to image pixels, for a crop of ``size`` pixels."""
    x0, y0, side, angle = as_crop_box(crop_box)
    s = side / size
    local = (np.asarray(points, dtype=np.float64) + 0.5) * s - 0.5 * side
    if angle != 0.0:
        local = local @ rotation(angle).T
    return local + np.array([x0 + 0.5 * side, y0 + 0.5 * side])


def image_to_crop(points: np.ndarray, crop_box: Sequence[float], size: int) -> np.ndarray:
    """Image points ``(..., 2)`` to the crop frame, for a crop of ``size`` pixels."""
    x0, y0, side, angle = as_crop_box(crop_box)
    s = side / size
    local = np.asarray(points, dtype=np.float64) - np.array([x0 + 0.5 * side, y0 + 0.5 * side])
    if angle != 0.0:
        local = local @ rotation(angle)  # R^T p, row-wise
    return (local + 0.5 * side) / s - 0.5


def crop_affine(crop_box: Sequence[float], size: int) -> np.ndarray:
    """``(2, 3)`` matrix ``A`` with ``image = A @ (u, v, 1)`` for crop pixel ``(u, v)``."""
    origin = crop_to_image(np.zeros(2), crop_box, size)
    du = crop_to_image(np.array([1.0, 0.0]), crop_box, size) - origin
    dv = crop_to_image(np.array([0.0, 1.0]), crop_box, size) - origin
    return np.stack([du, dv, origin], axis=1)


def resample_crop(rgb: np.ndarray, crop_box: Sequence[float], size: int) -> np.ndarray:
    """Cut the square ``crop_box`` out of ``rgb`` and resample it to ``size x size``.

    Bicubic, with Pillow's area-correct support when shrinking (no aliasing on large photos);
    black where the square leaves the image. A turned box is first turned upright at the
    image's own resolution (bicubic), then resized the same way.
    """
    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    x0, y0, side, angle = as_crop_box(crop_box)
    if side <= 0:
        raise ValueError(f"crop side must be positive, got {side}")
    image = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="RGB")
    # Integer window (in pixel-edge coordinates, where pixel i spans [i, i+1]) holding the crop
    # plus the filter's reach; Pillow pads it with black outside the image.
    pad = 3 + int(np.ceil(3 * side / size))
    if angle == 0.0:
        left = int(np.floor(x0 + 0.5)) - pad
        top = int(np.floor(y0 + 0.5)) - pad
        right = int(np.ceil(x0 + 0.5 + side)) + pad
        bottom = int(np.ceil(y0 + 0.5 + side)) + pad
        window = image.crop((left, top, right, bottom))
        box = (x0 + 0.5 - left, y0 + 0.5 - top, x0 + 0.5 - left + side, y0 + 0.5 - top + side)
    else:
        # Upright copy of the square plus `pad`, one image pixel per pixel: its edge point e maps
        # to the image edge point R e + offset (Pillow's affine transform works on pixel edges).
        n = int(np.ceil(side)) + 2 * pad
        rot = rotation(angle)
        centre_edge = np.array([x0 + 0.5 * side + 0.5, y0 + 0.5 * side + 0.5])
        offset = centre_edge - rot @ np.full(2, 0.5 * n)
        coeffs = (rot[0, 0], rot[0, 1], offset[0], rot[1, 0], rot[1, 1], offset[1])
        window = image.transform((n, n), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BICUBIC)
        lo = 0.5 * (n - side)
        box = (lo, lo, lo + side, lo + side)
    out = window.resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(out, dtype=np.uint8)
