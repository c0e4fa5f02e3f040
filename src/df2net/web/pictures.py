"""The pictures the demo page shows, as pure functions of arrays: the photo with its faces boxed,
and the depth map with its colour bar."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from df2net.reconstruct import STAGES, FaceResult

_BOX_COLOURS = [(0, 229, 255), (255, 64, 129), (118, 255, 3), (255, 196, 0), (213, 0, 249)]

#: Colour of the boxes of faces found but skipped (lettered, not numbered).
SKIPPED_COLOUR = (160, 160, 160)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def skipped_label(index: int) -> str:
    """The label of skipped face ``index`` on the picture and in the page's list: a, b, c ..."""
    return chr(ord("a") + index % 26)


def draw_face_boxes(
    rgb: np.ndarray, boxes: Sequence[np.ndarray], max_side: int = 1280, skipped: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """The photo with each face box drawn and numbered (0, 1, ... as the ``face<i>`` folders).

    Args:
        rgb: ``(H, W, 3)`` uint8 photo.
        boxes: ``(4,)`` boxes ``x0, y0, x1, y1``, or ``(4, 2)`` corners of a turned box (a face
            whose crop is turned so its eyes are level), in the photo's pixels.
        max_side: the picture is shrunk to fit this side first (it is only for looking at).
        skipped: boxes of the faces found but skipped, the same way; drawn in grey and lettered
            (:func:`skipped_label`).

    Returns:
        ``(h, w, 3)`` uint8 RGB.
    """
    image = Image.fromarray(np.asarray(rgb, np.uint8))
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 320))
    font = _font(max(14, round(max(image.size) / 28)))
    labelled = [(box, str(i), _BOX_COLOURS[i % len(_BOX_COLOURS)]) for i, box in enumerate(boxes)]
    labelled += [(box, skipped_label(i), SKIPPED_COLOUR) for i, box in enumerate(skipped)]
    for box, text, colour in labelled:
        corners = np.asarray(box, np.float64).reshape(-1, 2)
        if len(corners) == 2:  # x0, y0, x1, y1
            (a0, b0), (a1, b1) = corners
            corners = np.array([(a0, b0), (a1, b0), (a1, b1), (a0, b1)])
        corners = corners * scale
        draw.line([tuple(p) for p in (*corners, corners[0])], fill=colour, width=line, joint="curve")
        x0, y0 = corners[int(np.argmin(corners.sum(axis=1)))]  # the label goes by the top-left corner
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, line)
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        lx, ly = x0, y0 - h if y0 - h >= 0 else y0  # above the box, or inside it at the top
        draw.rectangle((lx, ly, lx + w, ly + h), fill=colour)
        draw.text((lx + pad - left, ly + pad - top), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def depth_range(face: FaceResult, percentiles: tuple[float, float] = (0.5, 99.9)) -> tuple[float, float]:
    """One colour scale for all stages of a face, so switching stages shows true differences."""
    if not face.mask.any():
        return 0.0, 1.0
    lows, highs = zip(*(np.percentile(face.stages[s][face.mask], percentiles) for s in STAGES))
    lo, hi = float(min(lows)), float(max(highs))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def depth_with_colorbar(
    depth: np.ndarray, mask: np.ndarray, value_range: tuple[float, float], bar_width: int = 110
) -> np.ndarray:
    """The colour-mapped depth with a labelled colour bar (crop pixels, near at the top) beside it.

    Returns:
        ``(H, W + bar_width, 3)`` uint8 RGB.
    """
    from df2net.export import depth_to_colormap

    lo, hi = value_range
    height = depth.shape[0]
    picture = depth_to_colormap(depth, mask, value_range=value_range)
    panel = Image.new("RGB", (bar_width, height), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    font = _font(max(11, height // 36))
    top, bottom = round(height * 0.12), round(height * 0.9)
    x0, x1 = 14, 14 + max(12, bar_width // 6)
    ramp = np.linspace(hi, lo, bottom - top)[:, None].repeat(x1 - x0, axis=1)
    panel.paste(Image.fromarray(depth_to_colormap(ramp, np.ones(ramp.shape, bool), value_range=value_range)), (x0, top))
    draw.rectangle((x0 - 1, top - 1, x1, bottom), outline=(60, 60, 60))
    draw.text((x0 - 6, top - round(height * 0.1)), "depth (px)\nnear", fill=(30, 30, 30), font=font)
    draw.text((x0 - 6, bottom + 4), "far", fill=(30, 30, 30), font=font)
    digits = 0 if hi - lo >= 20 else 1 if hi - lo >= 2 else 2
    for k in range(5):
        value = lo + (hi - lo) * k / 4
        y = bottom - 1 - (bottom - top - 1) * k / 4
        draw.line((x1, y, x1 + 5, y), fill=(60, 60, 60), width=1)
        draw.text((x1 + 8, y), f"{value:.{digits}f}", fill=(30, 30, 30), font=font, anchor="lm")
    return np.concatenate([picture, np.asarray(panel)], axis=1)
