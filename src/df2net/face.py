"""Face crop and mask: the square crop around a detected face, turned so its eyes are level.

Faces are found by :mod:`df2net.detection` (re-exported here: :class:`FaceDetector`,
:func:`detect_faces` ...); the crop box and its maps to and from the image are in
:mod:`df2net.cropbox`. The crop and the mask follow :class:`df2net.config.CropConfig` and
:class:`df2net.config.MaskConfig`, so the crop made for training is the crop made at inference.

Coordinates follow ``docs/conventions.md``: ``(u, v)`` with pixel centres at integers, ``u`` to the
right, ``v`` down. A crop box ``(x0, y0, side, angle)`` is the square whose outer top-left corner is
the image point ``(x0, y0)`` before it is turned by ``angle`` degrees about its centre; crop pixel
``(u, v)`` has its centre at ``c + R(angle) ((u + 0.5) side / S - side / 2, (v + 0.5) side / S - side / 2)``
for a crop of ``S`` pixels centred on ``c`` (:func:`crop_to_image`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from df2net.config import CropConfig, MaskConfig
from df2net.cropbox import (
    CropBox,
    as_crop_box,
    box_around,
    crop_to_image,
    image_to_crop,
    resample_crop,
    rotation,
)
from df2net.detection import (
    LANDMARK_MODEL_NAME,
    Detections,
    FaceDetection,
    FaceDetector,
    FaceList,
    default_detector,
    detect_faces,
    landmark_model_path,
)
from df2net.errors import NoFaceError

__all__ = [
    "LANDMARK_MODEL_NAME",
    "CropBox",
    "Detections",
    "FaceCrop",
    "FaceDetection",
    "FaceDetector",
    "FaceList",
    "crop_face",
    "crop_to_image",
    "default_detector",
    "detect_and_crop",
    "detect_faces",
    "face_mask",
    "fill_polygon",
    "image_to_crop",
    "landmark_model_path",
    "mask_polygon",
    "resample_crop",
    "square_crop_box",
]

# Landmark indices (0-based, dlib/iBUG 68-point scheme).
JAW = tuple(range(17))  # 0..16, image left to image right along the chin
BROW_OUTER_LEFT = 17  # outer end of the brow on the image's left
BROW_MID_LEFT = 19
BROW_MID_RIGHT = 24
BROW_OUTER_RIGHT = 26
EYE_INNER_LEFT = 39  # inner corner of the eye on the image's left
EYE_INNER_RIGHT = 42


# --------------------------------------------------------------------------------------------
# Crop and mask
# --------------------------------------------------------------------------------------------


def square_crop_box(detection: FaceDetection, cfg: CropConfig = CropConfig()) -> CropBox:
    """The square crop ``(x0, y0, side, angle)`` around a face, in image pixels (floats).

    ``side = cfg.scale * box side``; the centre is the box centre moved up the face (against the
    turned frame's ``v`` axis) by ``cfg.shift_up * box side``; ``angle`` is the detection's, so the
    eyes are level in the crop. The square may reach outside the image (padded black on crop).
    """
    box_side = detection.side
    up = rotation(detection.angle) @ np.array([0.0, -cfg.shift_up * box_side])
    return box_around(detection.centre + up, cfg.scale * box_side, detection.angle)


def mask_polygon(landmarks: np.ndarray, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """The face-mask polygon ``(21, 2)`` float64 for 68 landmarks, in their frame.

    The 17 jaw points (0..16, along the chin), then ``(x of 16, y of brow point 24)``, brow
    point 26 and brow point 17 each raised by ``cfg.forehead_raise`` times the eye distance
    ``|p39 - p42|`` (inner eye corners), then ``(x of 0, y of brow point 19)``; closed back to 0.
    """
    p = np.asarray(landmarks, dtype=np.float64)
    if p.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {p.shape}")
    raise_by = cfg.forehead_raise * float(np.linalg.norm(p[EYE_INNER_LEFT] - p[EYE_INNER_RIGHT]))
    up = np.array([0.0, raise_by])
    forehead = np.array(
        [
            (p[16, 0], p[BROW_MID_RIGHT, 1]),
            p[BROW_OUTER_RIGHT] - up,
            p[BROW_OUTER_LEFT] - up,
            (p[0, 0], p[BROW_MID_LEFT, 1]),
        ]
    )
    return np.concatenate([p[list(JAW)], forehead], axis=0)


def fill_polygon(polygon: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """Rasterise a closed polygon: True where a pixel centre ``(u, v)`` lies inside (even-odd).

    Exact point-in-polygon at the pixel centres, scanline by scanline; no supersampling needed.
    """
    width = height if width is None else width
    poly = np.asarray(polygon, dtype=np.float64)
    xa, ya = poly[:, 0], poly[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    rows = np.arange(height, dtype=np.float64)[:, None]  # (H, 1) scanlines through pixel centres
    # Half-open rule: an edge counts for a scanline y when min(ya, yb) <= y < max(ya, yb).
    crosses = (ya[None, :] <= rows) != (yb[None, :] <= rows)  # (H, E)
    with np.errstate(divide="ignore", invalid="ignore"):  # horizontal edges never cross
        t = (rows - ya[None, :]) / (yb - ya)[None, :]
        x_cross = np.where(crosses, xa[None, :] + t * (xb - xa)[None, :], np.inf)
    x_cross.sort(axis=1)
    n_cross = crosses.sum(axis=1)
    cols = np.arange(width, dtype=np.float64)
    mask = np.zeros((height, width), dtype=bool)
    for v in np.nonzero(n_cross)[0]:
        xs = x_cross[v, : n_cross[v]]
        # Pixel centre u is inside when an odd number of crossings lie at or left of it.
        mask[v] = (np.searchsorted(xs, cols, side="right") % 2) == 1
    return mask


def face_mask(landmarks_crop: np.ndarray, size: int, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """The ``(size, size)`` bool face mask: :func:`mask_polygon` filled at the pixel centres."""
    return fill_polygon(mask_polygon(landmarks_crop, cfg), size, size)


@dataclass
class FaceCrop:
    """One face cut out as a square crop, with its mask and the map back to the image.

    Attributes:
        image: ``(S, S, 3)`` uint8 crop (not masked; black where the crop leaves the image).
        mask: ``(S, S)`` bool face mask (:func:`face_mask`).
        landmarks: ``(68, 2)`` float32 landmarks in the crop frame.
        detection: the face in the image frame.
        crop_box: ``(x0, y0, side, angle)`` of the crop in image pixels and degrees
            (:mod:`df2net.cropbox`).
        index: the face's position among the image's faces, left to right, from 0.
    """

    image: np.ndarray
    mask: np.ndarray
    landmarks: np.ndarray
    detection: FaceDetection
    crop_box: CropBox
    index: int = 0
    source: str = field(default="", compare=False)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def pixel_scale(self) -> float:
        """Image pixels per crop pixel."""
        return float(self.crop_box[2]) / self.size

    @property
    def angle(self) -> float:
        """Degrees the crop is turned by in the image (the face's roll, levelled)."""
        return as_crop_box(self.crop_box)[3]

    @property
    def masked_image(self) -> np.ndarray:
        """The crop with everything outside the mask black."""
        return self.image * self.mask[..., None].astype(np.uint8)

    def to_image(self, points_crop: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` crop-frame points ``(u, v)`` to image pixels."""
        return crop_to_image(points_crop, self.crop_box, self.size)

    def to_crop(self, points_image: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` image points ``(u, v)`` to the crop frame."""
        return image_to_crop(points_image, self.crop_box, self.size)


def crop_face(
    rgb: np.ndarray,
    detection: FaceDetection,
    crop_cfg: CropConfig = CropConfig(),
    mask_cfg: MaskConfig = MaskConfig(),
    index: int = 0,
) -> FaceCrop:
    """Cut out one detected face: the square crop, its landmarks and its mask."""
    crop_box = square_crop_box(detection, crop_cfg)
    size = crop_cfg.size
    image = resample_crop(rgb, crop_box, size)
    landmarks = image_to_crop(detection.landmarks, crop_box, size).astype(np.float32)
    mask = face_mask(landmarks, size, mask_cfg)
    return FaceCrop(image=image, mask=mask, landmarks=landmarks, detection=detection, crop_box=crop_box, index=index)


def detect_and_crop(
    rgb: np.ndarray,
    source: str = "<image>",
    *,
    detector: FaceDetector | None = None,
    crop_cfg: CropConfig = CropConfig(),
    mask_cfg: MaskConfig = MaskConfig(),
) -> FaceList[FaceCrop]:
    """Every face of ``rgb`` as a :class:`FaceCrop`, left to right; the list's ``skipped`` names
    the faces found but not kept (:class:`~df2net.detection.SkippedFace`).

    Raises:
        NoFaceError: ``"no face found"``, or ``"face too small (N px; need at least M)"`` when the
            only faces found are below the detector's minimum size; its ``skipped`` names them.
    """
    detector = detector if detector is not None else default_detector()
    faces = detector.detect(rgb)
    if not faces:
        too_small = [f.side for f in faces.skipped if f.reason == "too_small"]
        if too_small:
            # Rounded down: a face too small never reads as big enough.
            cause = f"face too small ({math.floor(max(too_small))} px; need at least {detector.min_face_size})"
            raise NoFaceError(source, cause, faces.skipped)
        raise NoFaceError(source, "no face found", faces.skipped)
    crops: FaceList[FaceCrop] = FaceList(skipped=faces.skipped)
    for i, det in enumerate(faces):
        crop = crop_face(rgb, det, crop_cfg, mask_cfg, index=i)
        crop.source = str(source)
        crops.append(crop)
    return crops
