"""Errors df2net reports to a user as one line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from df2net.detection.skipped import SkippedFace


class Df2netError(Exception):
    """Base class of the errors df2net raises on purpose."""


class InputError(Df2netError):
    """A photo that cannot be reconstructed: the message names the file and the cause."""

    def __init__(self, source: str | Path, cause: str) -> None:
        self.source = str(source)
        self.cause = cause
        super().__init__(f"{self.source}: {cause}")


class NoFaceError(InputError):
    """A photo in which no face was kept: none was found, or every face found was skipped.

    ``skipped`` names the faces found but not kept
    (:class:`df2net.detection.skipped.SkippedFace`), so a failed photo's are counted too.
    """

    def __init__(self, source: str | Path, cause: str, skipped: Sequence[SkippedFace] = ()) -> None:
        super().__init__(source, cause)
        self.skipped = list(skipped)


class WeightsError(Df2netError):
    """Weights that are missing, malformed or do not fit the model."""
