"""Faces found but not reconstructed: what they were and why, beside the faces that were kept.

A detector, a crop step and a reconstruction each return their faces as a :class:`FaceList`: a
plain list (what a caller that only wants faces uses, unchanged) whose ``skipped`` attribute
holds a :class:`SkippedFace` for every face found in the photo but not kept, with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar


from df2net.cropbox import TurnedBox

#: Why a face found in a photo was not reconstructed (:attr:`SkippedFace.reason`).
SKIP_REASONS: dict[str, str] = {
    "too_small": "its box is smaller than the minimum face size",
    "not_confirmed": "HOG scored it as a face but dlib's CNN did not confirm it",
}

T = TypeVar("T")


@dataclass(frozen=True)
class SkippedFace(TurnedBox):
    """A face found in a photo but not reconstructed.

    Attributes:
        reason: a key of :data:`SKIP_REASONS`.
        box: ``(x0, y0, x1, y1)`` image pixels, upright in the frame turned by ``angle`` about
            the box's centre (as :attr:`df2net.detection.FaceDetection.box`).
        angle: degrees the box is turned by.
        score: the detector's score for it (HOG's for ``"not_confirmed"``).
        why: the reason in one line for people, with the numbers behind it.
    """

    reason: str
    box: tuple[float, float, float, float]
    angle: float
    score: float
    why: str

    def to_json(self) -> dict[str, Any]:
        """The entry of ``skipped_faces`` in ``photo.json`` (``size_px`` rounded down, so a face
        too small never reads as big enough)."""
        return {
            "reason": self.reason,
            "why": self.why,
            "size_px": math.floor(self.side * 10.0) / 10.0,
            "box_xyxy": [round(float(v), 2) for v in self.box],
            "angle_deg": round(float(self.angle), 3),
            "score": round(float(self.score), 4),
        }


class FaceList(list[T], Generic[T]):
    """A photo's faces, left to right, as a plain list; ``skipped`` lists the faces found in the
    photo but not kept (:class:`SkippedFace`, left to right)."""

    def __init__(self, faces: Iterable[T] = (), skipped: Iterable[SkippedFace] = ()) -> None:
        super().__init__(faces)
        self.skipped: list[SkippedFace] = list(skipped)


def skipped_of(found: object) -> list[SkippedFace]:
    """The skipped faces ``found`` names: a :class:`FaceList`'s, or those of an error that says
    why a photo kept no face (:class:`df2net.errors.NoFaceError`); none for anything else."""
    return list(getattr(found, "skipped", ()))
