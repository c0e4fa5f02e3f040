"""Landmarks: dlib's 68-point predictor on a candidate's box, upright, then settled.

The predictor was trained on upright HOG boxes, so it is only ever given one: when the eye line
of the first landmarks is turned more than ``DetectConfig.relevel_deg`` from the frame the
candidate was found in, HOG runs again on a patch turned so the eyes are level and the landmarks
are placed again on that box (:meth:`Landmarker.level`). Once a face is kept, its landmarks are
placed again on the box they imply (:meth:`Landmarker.settle`; HOG's boxes come in 20 % steps of
size), so the same face gets the same landmarks at any size.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from df2net.config import DetectConfig
from df2net.cropbox import box_around, crop_to_image, rotation
from df2net.detection.candidates import Candidate, hog_near
from df2net.detection.models import load_dlib_model
from df2net.detection.photo import Photo

#: The HOG box from the 68 landmarks (:func:`landmark_box`), fitted to HOG's boxes of the 25 demo
#: faces at 8 scales (side/sqrt(extent): median 1.054, spread 4 % between faces; HOG's own sides
#: come in steps of 20 %).
LANDMARK_BOX_SIDE = 1.054
LANDMARK_BOX_RAISE = 0.132

#: Faces larger than this (box side, px) get their landmarks on a copy shrunk to it, so a face
#: gets the same landmarks at any size (dlib's predictor was trained on smaller faces).
LANDMARK_MAX_BOX = 320.0

# Landmark index ranges of the eyes (0-based iBUG): image-left eye 36..41, image-right 42..47.
_EYE_LEFT = slice(36, 42)
_EYE_RIGHT = slice(42, 48)
_EYE_OUTER_LEFT, _EYE_OUTER_RIGHT, _NOSE_TIP = 36, 45, 30


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


def angle_diff(a: float, b: float) -> float:
    """``a - b`` in degrees, wrapped to ``[-180, 180)``."""
    return (a - b + 180.0) % 360.0 - 180.0


class Landmarker:
    """dlib's 68-point predictor (loaded once per process) placed on candidates' boxes.

    Args:
        predictor_path: the 68-landmark ``.dat`` model.
        cfg: the search settings (``relevel_deg``, ``candidate_score``, ``settle_max_turn``).
    """

    def __init__(self, predictor_path: Path, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self._predictor = load_dlib_model("landmarks", str(predictor_path))

    def place(self, photo: Photo, cand: Candidate) -> np.ndarray:
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

    def level(self, photo: Photo, cand: Candidate, scores: dict[str, float]) -> tuple[Candidate, np.ndarray, float]:
        """The candidate upright: its landmarks and eye angle, and when the eye line is turned
        more than ``cfg.relevel_deg`` from its frame, the candidate in the eye-level frame (HOG's
        box there, whose score ``scores`` gains as ``"hog_level"``, else the same box turned)
        with landmarks placed again."""
        landmarks = self.place(photo, cand)
        angle = eye_angle(landmarks)
        if abs(angle_diff(angle, cand.angle)) > self.cfg.relevel_deg:
            level = hog_near(photo, cand, angle, self.cfg.candidate_score)
            if level is not None:
                cand, scores["hog_level"] = level, round(level.score, 4)
            else:
                cand = replace(cand, angle=angle)
            landmarks = self.place(photo, cand)
            angle = eye_angle(landmarks)
        return cand, landmarks, angle

    def turned(self, landmarks: np.ndarray) -> bool:
        """Whether the face is turned past ``cfg.settle_max_turn`` (:func:`turn_share`)."""
        return abs(turn_share(landmarks) - 0.5) > self.cfg.settle_max_turn

    def settle(self, photo: Photo, cand: Candidate, landmarks: np.ndarray, angle: float) -> tuple[np.ndarray, float]:
        """The landmarks placed again on the box they imply (HOG's boxes come in 20 % steps of
        size), twice, upright in the eye-level frame unless the face is near upright.

        A face turned more than ``cfg.settle_max_turn`` (:func:`turn_share`) keeps the landmarks
        of the detector's box: the box its landmarks imply is narrower and off-centre, and the
        predictor drifts on it (at 45 degrees of yaw from 0.03 to 0.2-0.3 box sides off;
        ``benchmarks/yaw.py``)."""
        if self.turned(landmarks):
            return landmarks, angle
        for _ in range(2):
            centre, side = landmark_box(landmarks, angle)
            frame = 0.0 if abs(angle) <= self.cfg.relevel_deg else angle
            landmarks = self.place(photo, Candidate(centre, side, frame, cand.score))
            angle = eye_angle(landmarks)
        return landmarks, angle
