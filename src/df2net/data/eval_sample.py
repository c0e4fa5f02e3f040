"""One dataset sample as ``df2net evaluate`` scores it, and the methods that predict its depth.

A sample folder is written by ``df2net make-data`` (docs/conventions.md); a method (the 3DMM
baselines of :mod:`df2net.data.baselines`, df2net after each stage) maps a :class:`Sample` to
its depth maps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = ["Method", "Sample", "load_sample"]

#: A method maps a sample to its predicted depth maps by row name (crop pixels).
Method = Callable[["Sample"], dict[str, np.ndarray]]


@dataclass
class Sample:
    """One dataset sample, as written by ``df2net make-data`` (docs/conventions.md).

    ``depth_base``, ``marks_mask`` and ``image_unmarked`` are optional (synthetic data only;
    the last two only where albedo-only marks were painted).
    """

    name: str
    image: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) bool
    depth: np.ndarray  # (S, S) float32, truth (with detail)
    normals: np.ndarray | None  # (S, S, 3) float32
    detail_mask: np.ndarray | None  # (S, S) bool
    landmarks: np.ndarray  # (68, 2) crop frame
    params: dict = field(default_factory=dict)
    depth_base: np.ndarray | None = None  # (S, S) float32, truth without the procedural relief
    marks_mask: np.ndarray | None = None  # (S, S) bool, where albedo-only marks were painted
    image_unmarked: np.ndarray | None = None  # (S, S, 3) uint8, the same render without them

    @property
    def px_per_mm(self) -> float | None:
        value = self.params.get("px_per_mm")
        return float(value) if value else None

    @property
    def has_marks(self) -> bool:
        """Whether the false-relief test can run: marks and the image without them."""
        return self.marks_mask is not None and self.image_unmarked is not None and bool(self.marks_mask.any())

    def unmarked(self) -> Sample:
        """This sample with ``image_unmarked`` as its image (and nothing about the marks)."""
        if self.image_unmarked is None:
            raise ValueError(f"sample {self.name} has no image_unmarked")
        return replace(self, image=self.image_unmarked, marks_mask=None, image_unmarked=None)


def load_sample(folder: Path) -> Sample:
    """Read one sample folder (the optional files where present)."""
    from PIL import Image

    def png(name: str) -> np.ndarray | None:
        path = folder / name
        return np.asarray(Image.open(path)) if path.exists() else None

    def rgb(name: str) -> np.ndarray | None:
        path = folder / name
        return np.asarray(Image.open(path).convert("RGB")) if path.exists() else None

    def npy(name: str) -> np.ndarray | None:
        path = folder / name
        return np.load(path).astype(np.float32) if path.exists() else None

    detail, marks = png("detail_mask.png"), png("marks_mask.png")
    params_path = folder / "params.json"
    return Sample(
        name=folder.name,
        image=rgb("image.png"),
        mask=png("mask.png") > 127,
        depth=npy("depth.npy"),
        normals=npy("normals.npy"),
        detail_mask=None if detail is None else detail > 127,
        landmarks=np.asarray(json.loads((folder / "landmarks.json").read_text())["crop"], np.float32),
        params=json.loads(params_path.read_text()) if params_path.exists() else {},
        depth_base=npy("depth_base.npy"),
        marks_mask=None if marks is None else marks > 127,
        image_unmarked=rgb("image_unmarked.png"),
    )
