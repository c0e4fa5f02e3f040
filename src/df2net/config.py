"""The facts every stage of df2net shares, each stated once.

Crop geometry, the mask rule and the network input size live here and are imported wherever
they are needed, so a crop made for training is the crop made at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Side of the square face crop fed to the network, in pixels (the paper's 512x512).
CROP_SIZE: int = 512

#: Largest image we process, in pixels; bigger photos are downscaled on load.
MAX_IMAGE_PIXELS: int = 40_000_000

#: Pillow's decompression-bomb guard: images beyond this are refused outright.
HARD_MAX_IMAGE_PIXELS: int = 400_000_000

#: Detected faces whose box is smaller than this (pixels of side) are refused as too small.
MIN_FACE_SIZE: int = 40


@dataclass(frozen=True)
class CropConfig:
    """How the square crop is placed around a detected face box.

    The crop side is ``scale`` times the face box side; its centre is the box centre moved up by
    ``shift_up`` times the box side (so the forehead, raised above the eyebrows, fits).
    """

    size: int = CROP_SIZE
    scale: float = 1.8
    shift_up: float = 0.15


@dataclass(frozen=True)
class MaskConfig:
    """The face mask rule: the jaw line closed over the forehead.

    The forehead points are the outer eyebrow ends raised by ``forehead_raise`` times the
    distance between the inner eye corners (landmarks 40 and 43, 1-based).
    """

    forehead_raise: float = 1.0
