"""Candidates: the boxes where a face may be, from dlib's HOG detector (or its CNN detector).

dlib's HOG face detector scans the photo, scaled so faces down to ``DetectConfig.search_size``
pixels are seen, keeping everything above a low score: a face rolled up to about 45 degrees,
turned or small still shows up as a weak candidate. Optional turned copies of the photo
(``roll_copies``, coarse scale) add faces rolled further. With ``scan_threads`` > 1 the scan runs
in overlapping strips side by side (dlib lets go of the GIL while it scans). The same scan on a
patch turned to an eye line (:func:`hog_near`) gives a candidate its upright box again.

For the ``"cnn"`` detector, :func:`cnn_candidates` runs dlib's CNN over the whole photo and maps
its boxes to HOG-like boxes (:func:`cnn_box_to_hog`), the boxes the landmark predictor expects.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from df2net.config import DetectConfig
from df2net.cropbox import box_around, crop_to_image, rotation
from df2net.detection.photo import Photo

#: Smallest face box (side, pixels) dlib's HOG detector finds at a photo's own resolution: all 25
#: demo faces pasted with a 55 px jaw (box about 58 px) are found at score >= 0, half at 50 px.
HOG_MIN_BOX = 58.0

#: dlib's CNN box against the HOG box of the same face (medians over the 25 demo photos): the HOG
#: box's side is ``CNN_TO_HOG_SIDE`` times the CNN's (spread 0.14), its centre ``CNN_TO_HOG_SHIFT``
#: CNN sides lower (spread 0.05).
CNN_TO_HOG_SIDE = 1.09
CNN_TO_HOG_SHIFT = 0.06

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


@dataclass
class Candidate:
    """A possible face: an upright box in the frame turned by ``angle`` (image pixels)."""

    centre: np.ndarray
    side: float
    angle: float
    score: float
    source: str = "hog"  # which detector gave the score


Found = list[tuple[np.ndarray, float, float]]  # HOG's boxes: (centre (2,), side, score)


def same_face(c1: np.ndarray, s1: float, c2: np.ndarray, s2: float) -> bool:
    """Whether two boxes (centre, side) are one face: centres within half the larger side, sides
    within 2x."""
    return float(np.linalg.norm(c1 - c2)) < 0.5 * max(s1, s2) and max(s1, s2) < 2.0 * min(s1, s2)


#: Anything with a ``centre`` and a ``side``: candidates, detections.
Boxed = TypeVar("Boxed")


def suppress(cands: list[Boxed], key: Callable[[Boxed], float]) -> list[Boxed]:
    """Greedy non-maximum suppression: a candidate near a better one (:func:`same_face`) is dropped."""
    kept: list[Boxed] = []
    for c in sorted(cands, key=key, reverse=True):
        if not any(same_face(c.centre, c.side, k.centre, k.side) for k in kept):
            kept.append(c)
    return kept


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


def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-3:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))


def hog_boxes(rgb: np.ndarray, threshold: float) -> Found:
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
    found = [(c + shift, side, sc) for c, side, sc in hog_boxes(_scaled_strip(photo.image, scale, axis, lo, hi), threshold)]
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
        return [lambda: _in_photo(hog_boxes(_resized(photo.rgb, scale), threshold), scale)]

    def coarse() -> Found:
        k = scale / HOG_LEVEL_STEP**STRIP_LEVELS
        return _in_photo(hog_boxes(_resized(photo.rgb, k), threshold), k)

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
        for c, side, s in hog_boxes(turned, threshold):
            found.append(Candidate(crop_to_image(c, box, n), side * diag / n, angle, s))
    return found


def face_patch(
    photo: Photo, centre: np.ndarray, side: float, angle: float, face_px: float, extent: float
) -> tuple[np.ndarray, tuple]:
    """An upright patch of ``extent`` face sides around ``centre``, the face ``face_px`` wide, and
    its frame ``(box, n)`` for :func:`df2net.cropbox.crop_to_image`."""
    n = max(16, round(extent * face_px))
    box = box_around(centre, extent * side, angle)
    return photo.sample(box, n), (box, n)


def hog_near(photo: Photo, cand: Candidate, angle: float, threshold: float) -> Candidate | None:
    """HOG on a patch around the candidate turned to ``angle``: its best box of the same face
    scoring above ``threshold``, or None."""
    face_px = max(1.3 * HOG_MIN_BOX, min(cand.side, 200.0))
    patch, frame = face_patch(photo, cand.centre, cand.side, angle, face_px, 2.2)
    best = None
    for c, side, s in hog_boxes(patch, threshold):
        c_img = crop_to_image(c, *frame)
        side_img = side * frame[0][2] / frame[1]
        if same_face(c_img, side_img, cand.centre, cand.side) and (best is None or s > best.score):
            best = Candidate(c_img, side_img, angle, s)
    return best


def cnn_box_to_hog(centre: np.ndarray, side: float, angle: float) -> tuple[np.ndarray, float]:
    """A CNN box (centre, side; upright in the frame of ``angle``) as the HOG box of the face."""
    down = rotation(angle) @ np.array([0.0, 1.0])
    return centre + CNN_TO_HOG_SHIFT * side * down, CNN_TO_HOG_SIDE * side


def cnn_candidates(photo: Photo, cnn: Any, face_size: float, cfg: DetectConfig) -> list[Candidate]:
    """dlib's CNN detector ``cnn`` over the whole photo (scaled as HOG's search for faces of
    ``face_size`` px, at most 1x), its boxes made HOG-like; scores are its confidences."""
    scale = min(1.0, search_scale(photo.rgb.shape, face_size, cfg) * 80.0 / HOG_MIN_BOX)
    out = []
    for d in cnn(_resized(photo.rgb, scale), 0):
        r = d.rect
        c = (np.array([0.5 * (r.left() + r.right()), 0.5 * (r.top() + r.bottom())]) + 0.5) / scale - 0.5
        c, side = cnn_box_to_hog(c, r.width() / scale, 0.0)
        out.append(Candidate(c, side, 0.0, float(d.confidence), "cnn"))
    return suppress(out, key=lambda c: c.score)
