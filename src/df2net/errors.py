"""Errors df2net reports to a user as one line."""

from __future__ import annotations

from pathlib import Path


class Df2netError(Exception):
    """Base class of the errors df2net raises on purpose."""


class InputError(Df2netError):
    """A photo that cannot be reconstructed: the message names the file and the cause."""

    def __init__(self, source: str | Path, cause: str) -> None:
        self.source = str(source)
        self.cause = cause
        super().__init__(f"{self.source}: {cause}")


class WeightsError(Df2netError):
    """Weights that are missing, malformed or do not fit the model."""
