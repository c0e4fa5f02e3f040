"""Finding every face of a photo: candidates, landmarks, verification, and the detector over them.

The default detector (``"auto"``, :class:`df2net.config.DetectConfig`), one room a step:

1. **Candidates** (:mod:`~df2net.detection.candidates`). dlib's HOG face detector scans the photo,
   scaled so faces down to ``search_size`` pixels are seen, keeping everything above a low score
   (-1): a face rolled up to about 45 degrees, turned or small still shows up as a weak candidate.
2. **Landmarks** (:mod:`~df2net.detection.landmarks`). dlib's 68-point predictor places landmarks
   on the candidate's box; when the eye line is turned more than ``relevel_deg`` from the frame
   the candidate was found in, HOG runs again on a patch turned so the eyes are level, and the
   landmarks are placed again on that box (the predictor was trained on upright HOG boxes, so it
   is only ever given one). A kept face's landmarks are settled on the box they imply.
3. **Verification** (:mod:`~df2net.detection.verify`). dlib's CNN face detector, which keeps its
   confidence under roll and turn, looks at the eye-level patch; a candidate it does not confirm
   is dropped. This removes HOG's false candidates (textures, patches, cartoons). A candidate HOG
   scored at least ``verify_below`` is taken on HOG's word: the CNN costs about 0.1 s of CPU a
   look, and HOG's false candidates score far below that.

:class:`FaceDetector` (:mod:`~df2net.detection.detector`) runs them in order and keeps the faces
of at least ``min_face_size`` pixels; the faces it found but did not keep are named in its
result's ``skipped`` (:mod:`~df2net.detection.skipped`). ``"hog"`` keeps HOG's detections above
``MIN_FACE_SCORE`` without verification (steps 1-2); ``"cnn"`` runs the CNN over the whole photo
(slow) and maps its boxes to HOG-like boxes for the predictor. Every :class:`FaceDetection` carries
the frame it is upright in (``angle``), its box in that frame, its scores and the detector's name.
dlib's model files are found and loaded in :mod:`~df2net.detection.models`.
"""

from df2net.detection.candidates import Candidate, hog_candidates, search_scale, suppress
from df2net.detection.detector import (
    DETECTORS,
    FACE_BOXES,
    Detections,
    FaceDetection,
    FaceDetector,
    default_detector,
    detect_faces,
)
from df2net.detection.landmarks import eye_angle, landmark_box, turn_share
from df2net.detection.models import CNN_MODEL_NAME, LANDMARK_MODEL_NAME, landmark_model_path, model_path
from df2net.detection.photo import Photo
from df2net.detection.skipped import SKIP_REASONS, FaceList, SkippedFace, skipped_of

__all__ = [
    "CNN_MODEL_NAME",
    "DETECTORS",
    "FACE_BOXES",
    "LANDMARK_MODEL_NAME",
    "SKIP_REASONS",
    "Candidate",
    "Detections",
    "FaceDetection",
    "FaceDetector",
    "FaceList",
    "Photo",
    "SkippedFace",
    "default_detector",
    "detect_faces",
    "eye_angle",
    "hog_candidates",
    "landmark_box",
    "landmark_model_path",
    "model_path",
    "search_scale",
    "skipped_of",
    "suppress",
    "turn_share",
]
