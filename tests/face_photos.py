"""Test photos for face detection: collages of the demo faces, and photos without a face.

Used by ``tests/test_detect.py`` and ``benchmarks/detectors.py``. A collage pastes demo photos,
scaled so each face's jaw (landmark 0 to 16) is a chosen width and turned by a chosen roll, onto a
textured background; each pasted face is known exactly (:class:`PlacedFace`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass(frozen=True)
class DemoFace:
    """A demo photo with its face found upright at full size."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    landmarks: np.ndarray  # (68, 2) image frame

    @property
    def jaw_width(self) -> float:
        return float(np.linalg.norm(self.landmarks[16] - self.landmarks[0]))


@dataclass(frozen=True)
class PlacedFace:
    """One face of a collage: where its landmarks landed, its jaw width and its roll."""

    name: str
    landmarks: np.ndarray  # (68, 2) collage frame
    width: float  # jaw width in collage pixels
    roll_deg: float  # as pasted: positive turns the face clockwise on screen

    @property
    def centre(self) -> np.ndarray:
        """Centre of the landmarks' extent (between the eyes and the chin)."""
        return 0.5 * (self.landmarks.min(axis=0) + self.landmarks.max(axis=0))


def texture_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A busy faceless picture: blurred colour noise, stripes, bricks, rings and leaves."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.zeros((height, width, 3), np.float32)
    for _ in range(6):  # sinusoid gratings of random direction, period and colour
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 120)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
        base += np.sin(phase)[..., None] * rng.uniform(-30, 30, 3)
    noise = Image.fromarray((rng.random((height // 8 + 1, width // 8 + 1, 3)) * 255).astype(np.uint8))
    base += np.asarray(noise.resize((width, height), Image.Resampling.BICUBIC), np.float32) * 0.5
    img = Image.fromarray(np.clip(base + 64, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    brick_h = int(rng.integers(12, 30))
    for row, y in enumerate(range(0, height // 3, brick_h)):  # a brick wall in the top third
        off = (row % 2) * brick_h
        for x in range(-off, width, 2 * brick_h):
            draw.rectangle([x, y, x + 2 * brick_h - 3, y + brick_h - 3], outline=(60, 40, 30), width=2)
    for _ in range(40):  # rings, leaves and dots
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, 50)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=int(rng.integers(1, 6)))
        else:
            draw.ellipse([x - r, y - r / 3, x + r, y + r / 3], fill=colour)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.uint8)


def noise_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Uniform RGB noise at three scales (pixel, 4 px and 16 px blobs) averaged."""
    out = np.zeros((height, width, 3), np.float32)
    for cell in (1, 4, 16):
        small = (rng.random((height // cell + 1, width // cell + 1, 3)) * 255).astype(np.uint8)
        out += np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR), np.float32)
    return (out / 3).astype(np.uint8)


def cartoon_image(rng: np.random.Generator, width: int, height: int, count: int = 12) -> np.ndarray:
    """Cartoon faces (smileys, a bear, a sun) printed on flat 'shirt' colours over noise."""
    img = Image.fromarray(noise_image(rng, width, height) // 2 + 64)
    draw = ImageDraw.Draw(img)
    for i in range(count):
        r = float(rng.uniform(25, 110))
        x, y = rng.uniform(r, width - r), rng.uniform(r, height - r)
        shirt = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.rectangle([x - 1.6 * r, y - 1.6 * r, x + 1.6 * r, y + 1.6 * r], fill=shirt)
        skin = tuple(int(c) for c in rng.integers(120, 256, 3))
        ink = (20, 20, 20)
        kind = i % 3
        if kind == 1:  # bear: ears first
            for s in (-1, 1):
                draw.ellipse([x + s * 0.75 * r - 0.35 * r, y - 1.0 * r, x + s * 0.75 * r + 0.35 * r, y - 0.3 * r], fill=skin, outline=ink)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=skin, outline=ink, width=max(1, int(r / 15)))
        if kind == 2:  # sun rays
            for a in np.linspace(0, 2 * np.pi, 12, endpoint=False):
                draw.line([x + 1.1 * r * np.cos(a), y + 1.1 * r * np.sin(a), x + 1.4 * r * np.cos(a), y + 1.4 * r * np.sin(a)], fill=ink, width=3)
        for s in (-1, 1):  # eyes, brows
            ex, ey = x + s * 0.35 * r, y - 0.25 * r
            draw.ellipse([ex - 0.12 * r, ey - 0.16 * r, ex + 0.12 * r, ey + 0.16 * r], fill=ink)
            draw.line([ex - 0.2 * r, ey - 0.32 * r, ex + 0.2 * r, ey - 0.36 * r], fill=ink, width=max(1, int(r / 20)))
        draw.ellipse([x - 0.08 * r, y, x + 0.08 * r, y + 0.12 * r], fill=ink)  # nose
        draw.arc([x - 0.5 * r, y - 0.1 * r, x + 0.5 * r, y + 0.6 * r], 20, 160, fill=ink, width=max(2, int(r / 12)))
    return np.asarray(img, dtype=np.uint8)


def _face_tile(face: DemoFace, width: float, roll_deg: float) -> tuple[Image.Image, np.ndarray]:
    """The demo photo scaled to jaw ``width``, rolled, with a feathered head-shaped alpha.

    Returns the RGBA tile and the landmarks in the tile's pixels.
    """
    s = width / face.jaw_width
    h, w = face.rgb.shape[:2]
    size = (max(8, round(w * s)), max(8, round(h * s)))
    sx, sy = size[0] / w, size[1] / h
    tile = Image.fromarray(face.rgb).resize(size, Image.Resampling.LANCZOS).convert("RGBA")
    lm = (face.landmarks + 0.5) * (sx, sy) - 0.5
    # Alpha: an ellipse round the head (landmark extent grown), feathered, so no tile edge shows.
    lo, hi = lm.min(axis=0), lm.max(axis=0)
    c, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    c[1] -= 0.35 * half[1]
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).ellipse([c[0] - 1.7 * half[0], c[1] - 1.8 * half[1], c[0] + 1.7 * half[0], c[1] + 1.8 * half[1]], fill=255)
    tile.putalpha(alpha.filter(ImageFilter.GaussianBlur(max(1.0, 0.08 * width))))
    # Pillow turns counter-clockwise on screen for a positive angle: negate for our clockwise roll.
    turned = tile.rotate(-roll_deg, resample=Image.Resampling.BICUBIC, expand=True)
    a = math.radians(roll_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])  # v down: clockwise on screen
    centre_in = np.array(size, float) / 2.0
    centre_out = np.array(turned.size, float) / 2.0
    lm_turned = (lm + 0.5 - centre_in) @ rot.T + centre_out - 0.5
    return turned, lm_turned


def single_face(
    face: DemoFace, rng: np.random.Generator, size: int | tuple[int, int], width: float, roll_deg: float
) -> tuple[np.ndarray, PlacedFace]:
    """One demo face (jaw ``width``, turned by ``roll_deg``) in the middle of a texture of ``size``
    pixels (square) or ``(width, height)``."""
    w, h = (size, size) if isinstance(size, int) else size
    canvas = Image.fromarray(texture_image(rng, w, h)).convert("RGBA")
    tile, lm = _face_tile(face, width, roll_deg)
    off = ((w - tile.size[0]) // 2, (h - tile.size[1]) // 2)
    canvas.alpha_composite(tile, off)
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8), PlacedFace(face.name, lm + off, width, roll_deg)


def make_collage(
    faces: list[DemoFace],
    rng: np.random.Generator,
    width: int = 1732,
    height: int = 1155,
    face_widths: tuple[float, float] = (40.0, 200.0),
    max_roll_deg: float = 40.0,
    count: int = 12,
) -> tuple[np.ndarray, list[PlacedFace]]:
    """Paste ``count`` demo faces (random photo, jaw width, roll) onto :func:`texture_image`.

    Faces do not overlap (their tiles' ellipses are kept apart); a face that finds no free place
    in 200 tries is left out, so the result may hold fewer than ``count``.
    """
    canvas = Image.fromarray(texture_image(rng, width, height)).convert("RGBA")
    placed: list[PlacedFace] = []
    taken: list[tuple[float, float, float]] = []  # centre x, y, radius
    for _ in range(count):
        face = faces[int(rng.integers(len(faces)))]
        w = float(rng.uniform(*face_widths))
        roll = float(rng.uniform(-max_roll_deg, max_roll_deg))
        tile, lm = _face_tile(face, w, roll)
        radius = 0.5 * max(tile.size)
        for _try in range(200):
            x = float(rng.uniform(0, width - tile.size[0]))
            y = float(rng.uniform(0, height - tile.size[1]))
            cx, cy = x + tile.size[0] / 2, y + tile.size[1] / 2
            if all(math.hypot(cx - ox, cy - oy) > 0.8 * (radius + r) for ox, oy, r in taken):
                break
        else:
            continue
        canvas.alpha_composite(tile, (round(x), round(y)))
        taken.append((cx, cy, radius))
        placed.append(PlacedFace(face.name, lm + (round(x), round(y)), w, roll))
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8), placed


def matches(centre: np.ndarray, side: float, face: PlacedFace) -> bool:
    """Whether a detection (box centre, side) is ``face``: centre within half a jaw, size within 2x."""
    near = float(np.linalg.norm(np.asarray(centre, float) - face.centre)) < 0.5 * face.width
    return near and 0.5 < side / face.width < 2.0
