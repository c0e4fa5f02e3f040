"""Albedo-only marks: colour on the skin with no relief under it, drawn in the SFM's UV space.

A face's colour varies for reasons that have nothing to do with its shape: freckles, moles, age
spots, make-up and pencil lines, stubble, stray eyebrow hairs. A network that reads relief from
shading must learn that a dark line is not a groove, so the synthetic faces wear such marks,
drawn independently of the relief (:mod:`df2net.data.detail`) and recorded in a mask:

- **freckles**: clusters of small brown dots (0.4-1.3 mm) over the nose and cheeks;
- **moles**: a few dark, round spots (0.8-2.5 mm);
- **age spots**: soft light-brown patches (2-6 mm), irregular;
- **pencil lines**: thin dark strokes (0.2-0.9 mm wide) — some where wrinkles would be (across
  the forehead, fanning from the eye corners, along the nasolabial fold), some anywhere;
- **stubble**: dense tiny dark dots on the lower face;
- **eyebrow hairs**: short thin strokes around the brows;
- **mottle**: a faint, fine colour noise everywhere on the skin (not counted as a mark; it keeps
  the low-passed "plain" skin from being unnaturally clean).

The layer is a multiplicative factor on the linear albedo (1 = unchanged, < 1 darker), so a render
with it differs from the render without it in colour only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from df2net.data.sfm import SurreyModel
from df2net.data.uv import StrokeCanvas, bezier, feature_mask_uv, landmark_uv, mm_per_texel, uv_raster

__all__ = ["MarksConfig", "MarkLayer", "random_marks", "MARK_THRESHOLD"]

#: A texel (or pixel) counts as marked where the factor darkens or tints any channel by this much.
MARK_THRESHOLD = 0.04

#: Linear-RGB colours of the pigments (the factor is ``1 - a * (1 - colour)``).
_PIGMENTS = {
    "brown": np.array([0.55, 0.36, 0.24]),
    "dark_brown": np.array([0.30, 0.19, 0.13]),
    "black": np.array([0.08, 0.08, 0.09]),
    "grey": np.array([0.35, 0.35, 0.36]),
    "navy": np.array([0.10, 0.12, 0.30]),
    "red": np.array([0.75, 0.25, 0.25]),
}


@dataclass(frozen=True)
class MarksConfig:
    """How often and how strongly each kind of mark appears (saved with every sample)."""

    prob: float = 0.6  # chance that a face wears any marks
    freckles_prob: float = 0.35
    moles_prob: float = 0.45
    age_spots_prob: float = 0.3
    pencil_prob: float = 0.55
    stubble_prob: float = 0.2
    brow_hairs_prob: float = 0.3
    mottle_amplitude: tuple[float, float] = (0.01, 0.05)


@dataclass(eq=False)
class MarkLayer:
    """A UV-space albedo factor and where it marks the skin.

    Attributes:
        factor: ``(R, R, 3)`` float32 multiplicative factor on the linear albedo.
        marked: ``(R, R)`` bool, the discrete marks (mottle excluded).
        kinds: per kind, how many were drawn.
    """

    factor: np.ndarray
    marked: np.ndarray
    kinds: dict[str, int] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        return {"counts": dict(self.kinds), "resolution": int(self.factor.shape[0]), "marked_texels": int(self.marked.sum())}


class _Paint:
    """Coverage layers per pigment, composited into a factor at the end."""

    def __init__(self, resolution: int, mm_per_tx: np.ndarray) -> None:
        self.r = resolution
        self.mm_per_tx = mm_per_tx
        self.k = 1.0 / float(np.median(mm_per_tx))  # texels per mm
        self.factor = np.ones((resolution, resolution, 3), np.float64)
        yy, xx = np.mgrid[0:resolution, 0:resolution]
        self._yy, self._xx = yy, xx

    def composite(self, coverage: np.ndarray, colour: np.ndarray, alpha: float) -> None:
        a = np.clip(coverage, 0.0, 1.0)[..., None] * alpha
        self.factor *= 1.0 - a * (1.0 - colour)

    def dots(self, centres: np.ndarray, radii_mm: np.ndarray) -> np.ndarray:
        """Soft discs (a smooth-edged top hat) at texel ``centres (N, 2)``; coverage in [0, 1]."""
        cov = np.zeros((self.r, self.r), np.float64)
        for (cx, cy), rad_mm in zip(centres, radii_mm):
            rad = rad_mm * self.k
            reach = int(np.ceil(rad * 1.8)) + 1
            x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, self.r)
            y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, self.r)
            if x1 <= x0 or y1 <= y0:
                continue
            d = np.hypot(self._xx[y0:y1, x0:x1] - cx, self._yy[y0:y1, x0:x1] - cy)
            edge = max(0.35 * rad, 0.5)
            cov[y0:y1, x0:x1] = np.maximum(cov[y0:y1, x0:x1], np.clip((rad - d) / edge + 0.5, 0.0, 1.0))
        return cov

    def strokes(self, polylines: list[np.ndarray], widths_mm: list[float]) -> np.ndarray:
        """Thin lines along texel polylines (Gaussian profile across, fading at the ends)."""
        canvas = StrokeCanvas(self.r, self.mm_per_tx)
        for pts, w in zip(polylines, widths_mm):
            canvas.stroke(pts, 1.0, w, taper=0.3)
        return np.clip(-canvas.disp * 1.4, 0.0, 1.0)



def random_marks(
    rng: np.random.Generator,
    model: SurreyModel,
    resolution: int,
    cfg: MarksConfig = MarksConfig(),
) -> MarkLayer:
    """Draw one face's albedo-only marks (see the module docstring) at ``resolution`` texels."""
    r = int(resolution)
    mmt = mm_per_texel(model, r)
    paint = _Paint(r, mmt)
    k = paint.k
    lm = landmark_uv(model, r)
    cover = uv_raster(model, r).mask
    features = feature_mask_uv(model, r)
    kinds: dict[str, int] = {}
    wears = rng.uniform() < cfg.prob

    def pt(i: int) -> np.ndarray:
        return np.asarray(lm[i], np.float64)

    brow_mid = 0.5 * (pt(21) + pt(22))
    brow_top = min(lm[i][1] for i in range(17, 27))
    nose_tip, nose_root = pt(30), pt(27)
    mouth_l, mouth_r = pt(48), pt(54)

    def skin_points(n: int, centre: np.ndarray, spread_mm: tuple[float, float]) -> np.ndarray:
        p = centre + rng.normal(0.0, 1.0, (n, 2)) * np.array(spread_mm) * k
        ix = np.clip(np.rint(p).astype(int), 0, r - 1)
        ok = cover[ix[:, 1], ix[:, 0]] & ~features[ix[:, 1], ix[:, 0]]
        return p[ok]

    if wears and rng.uniform() < cfg.freckles_prob:
        n = int(rng.integers(20, 160))
        centres = np.concatenate(
            [
                skin_points(n // 3, nose_root + 0.6 * (nose_tip - nose_root), (10.0, 6.0)),
                skin_points(n // 3, 0.5 * (pt(36) + pt(31)) + [0, 8 * k], (12.0, 9.0)),
                skin_points(n // 3, 0.5 * (pt(45) + pt(35)) + [0, 8 * k], (12.0, 9.0)),
            ]
        )
        cov = paint.dots(centres, rng.uniform(0.4, 1.3, len(centres)))
        paint.composite(cov, _PIGMENTS["brown"], rng.uniform(0.35, 0.8))
        kinds["freckles"] = len(centres)
    if wears and rng.uniform() < cfg.moles_prob:
        n = int(rng.integers(1, 5))
        centres = skin_points(n, 0.5 * (brow_mid + nose_tip), (35.0, 40.0))
        cov = paint.dots(centres, rng.uniform(0.8, 2.5, len(centres)))
        paint.composite(cov, _PIGMENTS["dark_brown"], rng.uniform(0.7, 1.0))
        kinds["moles"] = len(centres)
    if wears and rng.uniform() < cfg.age_spots_prob:
        n = int(rng.integers(1, 7))
        centres = skin_points(n, 0.5 * (brow_mid + nose_tip), (35.0, 35.0))
        blobs = np.concatenate([c + rng.normal(0, 1.5 * k, (3, 2)) for c in centres]) if len(centres) else np.zeros((0, 2))
        cov = ndimage.gaussian_filter(paint.dots(blobs, rng.uniform(1.5, 4.0, len(blobs))), 0.6 * k)
        paint.composite(cov, _PIGMENTS["brown"], rng.uniform(0.25, 0.55))
        kinds["age_spots"] = len(centres)
    if wears and rng.uniform() < cfg.pencil_prob:
        lines: list[np.ndarray] = []
        # Where wrinkles would be: across the forehead, from the eye corners, along the fold.
        for _ in range(int(rng.integers(0, 4))):
            half = rng.uniform(15.0, 40.0) * k
            y = brow_top - rng.uniform(8.0, 40.0) * k
            xc = brow_mid[0] + rng.normal(0.0, 6.0) * k
            xs = np.linspace(xc - half, xc + half, 30)
            ys = y + rng.uniform(-2.0, 6.0) * k * ((xs - xc) / half) ** 2
            lines.append(np.stack([xs, ys], 1))
        for corner, out in ((36, -1.0), (45, 1.0)):
            for _ in range(int(rng.integers(0, 3))):
                a = np.deg2rad(rng.uniform(-40.0, 40.0))
                d = np.array([out * np.cos(a), np.sin(a)])
                s = pt(corner) + d * rng.uniform(5.0, 9.0) * k
                lines.append(bezier(s, s + d * 6 * k + rng.normal(0, 1.0, 2) * k, s + d * rng.uniform(7.0, 15.0) * k))
        for wing, mouth, out in ((31, 48, -1.0), (35, 54, 1.0)):
            if rng.uniform() < 0.3:
                p0 = pt(wing) + np.array([out * 3.0, -3.0]) * k
                p2 = pt(mouth) + np.array([out * 6.0, 8.0]) * k
                lines.append(bezier(p0, 0.5 * (p0 + p2) + np.array([out * 4.0 * k, 0.0]), p2))
        # And anywhere on the skin, in any direction.
        for _ in range(int(rng.integers(0, 4))):
            s = skin_points(1, 0.5 * (brow_mid + nose_tip), (30.0, 35.0))
            if len(s):
                a = rng.uniform(0, np.pi)
                d = np.array([np.cos(a), np.sin(a)]) * rng.uniform(6.0, 25.0) * k
                lines.append(bezier(s[0] - d / 2, s[0] + rng.normal(0, 3.0, 2) * k, s[0] + d / 2))
        if lines:
            widths = list(rng.uniform(0.2, 0.9, len(lines)))
            cov = paint.strokes(lines, widths)
            pigment = ["dark_brown", "black", "grey", "navy", "brown"][int(rng.integers(5))]
            paint.composite(cov, _PIGMENTS[pigment], rng.uniform(0.45, 0.95))
            kinds["pencil_lines"] = len(lines)
    if wears and rng.uniform() < cfg.stubble_prob:
        chin = 0.5 * (mouth_l + mouth_r) + np.array([0.0, 12.0 * k])
        centres = np.concatenate(
            [skin_points(int(rng.integers(400, 1500)), chin, (22.0, 12.0)), skin_points(200, 0.5 * (nose_tip + 0.5 * (mouth_l + mouth_r)), (14.0, 3.0))]
        )
        cov = paint.dots(centres, rng.uniform(0.12, 0.3, len(centres)))
        paint.composite(cov, _PIGMENTS["grey" if rng.uniform() < 0.3 else "dark_brown"], rng.uniform(0.4, 0.8))
        kinds["stubble"] = len(centres)
    if wears and rng.uniform() < cfg.brow_hairs_prob:
        hairs = []
        for ids in (range(17, 22), range(22, 27)):
            pts = np.array([lm[i] for i in ids])
            for _ in range(int(rng.integers(10, 40))):
                j = rng.uniform(0, len(pts) - 1)
                base = pts[int(j)] + (j - int(j)) * (pts[min(int(j) + 1, len(pts) - 1)] - pts[int(j)])
                base = base + rng.normal(0.0, [2.5, 3.0]) * k
                a = np.deg2rad(rng.uniform(-70.0, 70.0)) - np.pi / 2
                hairs.append(np.stack([base, base + np.array([np.cos(a), np.sin(a)]) * rng.uniform(2.0, 6.0) * k]))
        cov = paint.strokes(hairs, list(rng.uniform(0.1, 0.22, len(hairs))))
        paint.composite(cov, _PIGMENTS["black" if rng.uniform() < 0.5 else "dark_brown"], rng.uniform(0.5, 0.9))
        kinds["brow_hairs"] = len(hairs)
    if wears and rng.uniform() < 0.2:  # blush: broad, soft and colour-only
        for c in (pt(31) + np.array([-14.0, 4.0]) * k, pt(35) + np.array([14.0, 4.0]) * k):
            cov = paint.dots(c[None], np.array([rng.uniform(10.0, 18.0)]))
            paint.composite(ndimage.gaussian_filter(cov, 4.0 * k), _PIGMENTS["red"], rng.uniform(0.1, 0.3))
        kinds["blush"] = 2

    marked = (np.abs(1.0 - paint.factor).max(-1) > MARK_THRESHOLD) & cover
    # Faint fine mottle everywhere (not a mark).
    amp = float(rng.uniform(*cfg.mottle_amplitude))
    mottle = ndimage.gaussian_filter(rng.normal(size=(r, r)), rng.uniform(0.3, 1.0) * k)
    mottle /= max(float(mottle.std()), 1e-9)
    tint = np.array([1.0, 1.15, 1.3])
    factor = paint.factor * np.clip(1.0 + amp * mottle[..., None] * tint, 0.7, 1.3)
    factor = np.where(cover[..., None], factor, 1.0)
    return MarkLayer(factor=factor.astype(np.float32), marked=marked, kinds=kinds)
