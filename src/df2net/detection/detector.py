"""The face detector: candidates, landmarks and verification run in order, one object over them.

:class:`FaceDetector` holds a :class:`~df2net.detection.landmarks.Landmarker` and (unless the
detector is ``"hog"``) dlib's CNN with its :class:`~df2net.detection.verify.Verifier`, and for
each photo:

1. takes the candidates (:mod:`df2net.detection.candidates`: HOG's, or for ``"cnn"`` the CNN's);
2. turns each one upright by its landmarks (:meth:`Landmarker.level`);
3. for ``"auto"``, has the CNN confirm each one HOG scored below ``DetectConfig.verify_below``
   (:meth:`Verifier.confirm`), dropping the others;
4. settles the landmarks and gives the face its box (the landmarks' own, or the detector's);
5. keeps the faces of at least ``min_face_size`` pixels and names the rest
   (:class:`~df2net.detection.skipped.SkippedFace`): the faces too small, and the candidates HOG
   alone would have kept (score ``MIN_FACE_SCORE``) that the CNN did not confirm.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from df2net import config
from df2net.config import DetectConfig
from df2net.cropbox import TurnedBox
from df2net.detection.candidates import Candidate, cnn_candidates, hog_candidates, same_face, suppress
from df2net.detection.landmarks import Landmarker, eye_angle, landmark_box
from df2net.detection.models import CNN_MODEL_NAME, landmark_model_path, load_dlib_model, model_path
from df2net.detection.photo import Photo, as_rgb_image
from df2net.detection.skipped import FaceList, SkippedFace
from df2net.detection.verify import Verifier
from df2net.errors import Df2netError

#: Detector names (``--detector``) and the name each records in metadata.json.
DETECTORS: dict[str, str] = {"auto": "hog+cnn", "hog": "hog", "cnn": "cnn"}

#: What the crop may be placed around (``DetectConfig.face_box``).
FACE_BOXES = ("landmarks", "detector")


@dataclass
class FaceDetection(TurnedBox):
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


class Detections(FaceList[FaceDetection]):
    """The faces :meth:`FaceDetector.detect` kept, left to right, as a plain list.

    ``skipped`` names the faces found but not kept (too small, not confirmed), so a caller can
    tell "no face" from "face too small".
    """


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
        self.landmarker = Landmarker(path, cfg)
        self._cnn = load_dlib_model("cnn", str(model_path(CNN_MODEL_NAME))) if cfg.detector != "hog" else None
        self.verifier = Verifier(self._cnn, cfg) if self._cnn is not None else None

    @property
    def search_size(self) -> float:
        """The smallest face (box side, px) searched for: the minimum face size, or
        ``cfg.search_size`` if that is smaller, so that faces just too small are still found and
        reported as such."""
        return float(min(self.cfg.search_size, self.min_face_size))

    def detect(self, rgb: np.ndarray) -> Detections:
        """Find every face in ``rgb`` and place its 68 landmarks.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB image (or ``(H, W)`` gray).

        Returns:
            The faces with a box side of at least ``min_face_size``, sorted left to right by box
            centre; the result's ``skipped`` names the faces found but not kept, left to right.
        """
        photo = Photo(as_rgb_image(rgb))
        auto = self.cfg.detector == "auto"
        if self.cfg.detector == "cnn":
            cands = cnn_candidates(photo, self._cnn, self.search_size, self.cfg)
        else:
            threshold = self.cfg.candidate_score if auto else config.MIN_FACE_SCORE
            cands = suppress(hog_candidates(photo, self.search_size, threshold, self.cfg), key=lambda c: c.score)
        faces: list[FaceDetection] = []
        unconfirmed: list[Candidate] = []
        for cand in cands:
            face = self._examine(photo, cand, verify=auto)
            if face is not None:
                faces.append(face)
            elif cand.score >= config.MIN_FACE_SCORE:  # what HOG alone (``"hog"``) would keep
                unconfirmed.append(cand)
        faces = suppress(faces, key=lambda f: f.score)  # candidates that converged on one face
        faces.sort(key=lambda f: float(f.centre[0]))
        skipped = [self._too_small(f) for f in faces if f.side < self.min_face_size]
        for cand in unconfirmed:  # unless another candidate of the same face was confirmed
            if not any(same_face(cand.centre, cand.side, f.centre, f.side) for f in faces):
                skipped.append(_not_confirmed(cand))
        skipped.sort(key=lambda s: float(s.centre[0]))
        return Detections([f for f in faces if f.side >= self.min_face_size], skipped)

    def _examine(self, photo: Photo, cand: Candidate, verify: bool) -> FaceDetection | None:
        """Landmarks, eye-level box and (``verify``) the CNN's word on one candidate."""
        scores = {cand.source: round(cand.score, 4)}
        cand, landmarks, angle = self.landmarker.level(photo, cand, scores)
        if verify and max(scores.values()) < self.cfg.verify_below:
            confirmed = self.verifier.confirm(photo, cand, angle, scores)
            if confirmed is None:
                return None
            if confirmed is not cand:
                cand = confirmed
                landmarks = self.landmarker.place(photo, cand)
                angle = eye_angle(landmarks)
        landmarks, angle = self.landmarker.settle(photo, cand, landmarks, angle)
        # The roll is kept to whole degrees (a crop does not turn with one landmark's last pixel);
        # the box is the landmarks' (the same at any size) unless the face is turned, where their
        # box is narrower and off-centre (``DetectConfig.face_box``).
        centre, side = cand.centre, cand.side
        if self.cfg.face_box == "landmarks" and not self.landmarker.turned(landmarks):
            centre, side = landmark_box(landmarks, float(round(angle)))
        score = scores.get("cnn", max(scores.values()))
        angle = float(round(angle))
        return FaceDetection(_box(centre, side), float(score), landmarks, angle=angle, detector=self.name, scores=scores)

    def _too_small(self, face: FaceDetection) -> SkippedFace:
        why = f"{math.floor(face.side)} px, under the minimum face size of {self.min_face_size} px"
        return SkippedFace("too_small", tuple(float(v) for v in face.box), face.angle, face.score, why)


def _box(centre: np.ndarray, side: float) -> np.ndarray:
    half = 0.5 * side
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def _not_confirmed(cand: Candidate) -> SkippedFace:
    why = f"HOG scored it {cand.score:.2f}; dlib's CNN did not confirm it as a face"
    box = tuple(float(v) for v in _box(cand.centre, cand.side))
    return SkippedFace("not_confirmed", box, cand.angle, round(cand.score, 4), why)


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
