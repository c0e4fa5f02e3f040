"""Procedural skin detail: wrinkles and pores as a displacement map in the SFM's UV space.

Each wrinkle is a stroke (a smooth curve in texture space) with a valley profile across it
(Gaussian, width and depth in millimetres, optionally with a ridge on one side as in a fold) that
fades toward both ends. Strokes are placed relative to the model's landmark vertices
(``ibug_to_sfm.txt``), so they land in the same place on every shape:

- forehead lines (horizontal, above the brows), frown lines (glabella, vertical between the brows),
  a bridge line across the nose root;
- crow's feet (fanning out of the outer eye corners), under-eye lines (arcs below the lower lids);
- nasolabial folds (nose wing to beside the mouth corner), marionette lines and lip lines;
- pores: a fine random grain in smooth patches (nose, cheeks, forehead).

The map is in millimetres, negative into the skin, and exactly 0 where nothing was added (the
profiles are soft-thresholded), so ``map != 0`` is the detail's support.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from df2net.data.sfm import SurreyModel
from df2net.data.uv import StrokeCanvas, bezier, landmark_uv, mm_per_texel, uv_raster

__all__ = ["DetailMap", "random_detail_map", "DETAIL_RESOLUTION"]

#: Default displacement-map resolution (texels per side): about 4.5 texels per mm on the face.
DETAIL_RESOLUTION = 1024

#: Displacements smaller than this (mm) are set to exactly 0 (soft threshold).
SUPPORT_EPS_MM = 0.004


@dataclass(eq=False)
class DetailMap:
    """A displacement map (mm, negative = into the skin) and what made it.

    Attributes:
        displacement: ``(R, R)`` float32 mm, 0 outside the detail's support.
        strength: the overall "age" in [0, 1] that scaled counts and depths.
        strokes: one JSON-ready dict per wrinkle (kind, depth, width, length).
        pores: the pore grain's parameters.
    """

    displacement: np.ndarray
    strength: float
    strokes: list[dict[str, Any]] = field(default_factory=list)
    pores: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for s in self.strokes:
            counts[s["kind"]] = counts.get(s["kind"], 0) + 1
        return {
            "strength": round(self.strength, 4),
            "resolution": int(self.displacement.shape[0]),
            "counts": counts,
            "strokes": self.strokes,
            "pores": self.pores,
            "max_depth_mm": round(float(-self.displacement.min()), 4),
        }



def random_detail_map(
    rng: np.random.Generator,
    model: SurreyModel,
    resolution: int = DETAIL_RESOLUTION,
    strength: float | None = None,
    expression: dict[str, float] | None = None,
    fold_gain: float = 1.0,
) -> DetailMap:
    """Draw a random set of wrinkles and pores for one face.

    Args:
        rng: the sample's generator.
        model: the SFM (landmark vertices, UV layout).
        resolution: map side in texels.
        strength: overall age/intensity in [0, 1]; drawn when None.
        expression: blendshape name -> weight; surprise deepens forehead lines, happiness crow's
            feet and nasolabial folds, anger and sadness frown lines.
        fold_gain: the folds of older faces (forehead, frown, nasolabial, marionette) are deeper by
            up to this factor, ``1 + (fold_gain - 1) * age**2``: real nasolabial and forehead
            folds of older faces are 0.5-3 mm deep; 1 keeps the sub-millimetre lines only.

    Returns:
        A :class:`DetailMap`.
    """
    r = int(resolution)
    mmt = mm_per_texel(model, r)
    cv = StrokeCanvas(r, mmt)
    lm = landmark_uv(model, r)
    expr = expression or {}
    age = float(strength) if strength is not None else float(0.15 + 0.85 * rng.uniform() ** 0.8)
    strokes: list[dict[str, Any]] = []

    fold = 1.0 + (float(fold_gain) - 1.0) * age**2

    def add(kind: str, pts: np.ndarray, depth: float, width: float, **kw: Any) -> None:
        if kind in ("forehead", "frown", "nasolabial", "marionette"):
            depth *= fold
        cv.stroke(pts, depth, width, **kw)
        length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum() / k_at(pts.mean(0)))
        strokes.append({"kind": kind, "depth_mm": round(depth, 4), "width_mm": round(width, 4), "length_mm": round(length, 2)})

    def count(max_n: float, boost: float = 0.0) -> int:
        lam = max_n * np.clip(age * (1.0 + boost), 0.0, 1.3)
        return int(min(rng.poisson(lam), int(np.ceil(max_n * 1.3))))

    def depth(lo: float, hi: float, boost: float = 0.0) -> float:
        return float(rng.uniform(lo, hi) * (0.35 + 0.65 * age) * (1.0 + 0.5 * boost))

    def k_at(p: np.ndarray) -> float:
        # Texels per mm at a texture point: the layout stretches toward the sides of the face.
        x, y = np.clip(np.rint(np.asarray(p, np.float64)).astype(int), 0, r - 1)
        return 1.0 / float(mmt[y, x])

    x_mid = 0.5 * (lm[21][0] + lm[22][0])
    brow_top = min(lm[i][1] for i in range(17, 27))
    brow_half = 0.5 * (lm[26][0] - lm[17][0])
    k = k_at((x_mid, brow_top))

    # Forehead lines.
    surprise = float(expr.get("surprise", 0.0))
    n = count(5.0, boost=1.5 * surprise)
    y = brow_top - rng.uniform(8.0, 14.0) * k
    for _ in range(n):
        half = brow_half * rng.uniform(0.45, 1.0)
        xc = x_mid + rng.normal(0.0, 4.0) * k
        curv = rng.uniform(-2.0, 7.0) * k
        wave_a, wave_l, phase = rng.uniform(0.0, 1.5) * k, rng.uniform(18.0, 45.0) * k, rng.uniform(0, 2 * np.pi)
        xs = np.linspace(xc - half, xc + half, 40)
        ys = y + curv * ((xs - xc) / half) ** 2 + wave_a * np.sin(2 * np.pi * xs / wave_l + phase)
        pts = np.stack([xs, ys], 1)
        d, w = depth(0.12, 0.7, surprise), rng.uniform(0.45, 1.2)
        if rng.uniform() < 0.4:  # broken in two
            cut = rng.integers(12, 28)
            gap = rng.integers(2, 6)
            add("forehead", pts[:cut], d, w)
            add("forehead", pts[cut + gap :], d * rng.uniform(0.6, 1.2), w)
        else:
            add("forehead", pts, d, w)
        y -= rng.uniform(7.0, 12.0) * k
        if y < brow_top - 48.0 * k:
            break

    # Frown lines (glabella) and the bridge line.
    frown_boost = 1.5 * float(expr.get("anger", 0.0) + expr.get("sadness", 0.0) + expr.get("disgust", 0.0))
    inner_y = 0.5 * (lm[21][1] + lm[22][1])
    for _ in range(count(2.5, boost=frown_boost)):
        side = rng.choice([-1.0, 1.0])
        x = x_mid + side * rng.uniform(1.5, 7.0) * k
        y_lo = inner_y + rng.uniform(0.0, 6.0) * k
        y_hi = inner_y - rng.uniform(8.0, 20.0) * k
        tilt = side * rng.uniform(0.0, 0.35) * (y_lo - y_hi)
        ctrl = np.array([x + tilt * 0.3 + rng.normal(0, 1.0) * k, 0.5 * (y_lo + y_hi)])
        add("frown", bezier(np.array([x, y_lo]), ctrl, np.array([x + tilt, y_hi])), depth(0.25, 1.1, frown_boost), rng.uniform(0.5, 1.2))
    if rng.uniform() < 0.35 * age + 0.2 * frown_boost:
        c = np.asarray(lm[27]) + np.array([0.0, rng.uniform(-3.0, 2.0) * k])
        half = rng.uniform(4.0, 8.0) * k
        add("bridge", bezier(c - [half, 0], c + [0, rng.uniform(-1.5, 1.5) * k], c + [half, 0]), depth(0.15, 0.6), rng.uniform(0.5, 1.0))

    # Crow's feet and under-eye lines, per eye.
    happy = float(expr.get("happiness", 0.0))
    for corner, inner, lower, out in ((36, 39, (41, 40), -1.0), (45, 42, (46, 47), 1.0)):
        c = np.asarray(lm[corner])
        k = k_at(c + np.array([out * 8.0 * cv.k, 0.0]))
        nf = count(4.0, boost=1.5 * happy)
        if nf:
            angles = np.linspace(-40.0, 40.0, nf) + rng.normal(0.0, 6.0, nf) if nf > 1 else rng.uniform(-20, 20, 1)
            for ang in angles:
                a = np.deg2rad(ang)
                direction = np.array([out * np.cos(a), np.sin(a)])
                start = c + direction * rng.uniform(4.0, 8.0) * k + rng.normal(0.0, 0.8, 2) * k
                length = rng.uniform(6.0, 15.0) * k
                end = start + direction * length
                bend = np.array([-direction[1], direction[0]]) * rng.normal(0.0, 1.5) * k
                add("crows_feet", bezier(start, 0.5 * (start + end) + bend, end), depth(0.12, 0.55, happy), rng.uniform(0.4, 0.9))
        for j in range(count(1.6)):
            lid = 0.5 * (np.asarray(lm[lower[0]]) + np.asarray(lm[lower[1]]))
            drop = (rng.uniform(3.0, 6.0) + 4.0 * j) * k
            p0 = np.asarray(lm[inner]) + np.array([out * rng.uniform(0.0, 3.0) * k, drop * 0.6])
            p2 = c + np.array([out * rng.uniform(1.0, 5.0) * k, drop * 0.5])
            mid = np.array([0.5 * (p0[0] + p2[0]), lid[1] + drop + rng.uniform(0.0, 3.0) * k])
            add("under_eye", bezier(p0, 2 * mid - 0.5 * (p0 + p2), p2), depth(0.12, 0.5), rng.uniform(0.45, 1.0))

    # Nasolabial folds (almost always, mild when young), marionette and lip lines.
    for wing, mouth, out in ((31, 48, -1.0), (35, 54, 1.0)):
        k = k_at(0.5 * (np.asarray(lm[wing]) + np.asarray(lm[mouth])))
        if rng.uniform() > 0.55 + 0.45 * age + 0.3 * happy:
            continue
        p0 = np.asarray(lm[wing]) + np.array([out * rng.uniform(2.0, 5.0), -rng.uniform(2.0, 6.0)]) * k
        p2 = np.asarray(lm[mouth]) + np.array([out * rng.uniform(4.0, 10.0), rng.uniform(3.0, 14.0)]) * k
        seg = p2 - p0
        normal = np.array([seg[1], -seg[0]]) / max(np.linalg.norm(seg), 1e-9)
        if normal[0] * out < 0:
            normal = -normal
        ctrl = 0.5 * (p0 + p2) + normal * rng.uniform(1.5, 6.0) * k
        ridge_side = 1.0 if seg[0] * normal[1] - seg[1] * normal[0] >= 0 else -1.0
        add(
            "nasolabial",
            bezier(p0, ctrl, p2, 32),
            depth(0.5, 1.8, happy),
            rng.uniform(1.0, 2.4),
            ridge=rng.uniform(0.2, 0.5),
            ridge_side=ridge_side,
            taper=0.45,
        )
        if rng.uniform() < age - 0.35:
            q0 = np.asarray(lm[mouth]) + np.array([out * rng.uniform(0.5, 2.0), rng.uniform(1.0, 3.0)]) * k
            q2 = q0 + np.array([out * rng.uniform(0.0, 4.0), rng.uniform(9.0, 17.0)]) * k
            add("marionette", bezier(q0, 0.5 * (q0 + q2) + np.array([out * 1.0 * k, 0.0]), q2), depth(0.3, 1.0), rng.uniform(0.6, 1.4))
    k = k_at(lm[51])
    if rng.uniform() < 0.6 * age - 0.15:
        for _ in range(int(rng.integers(3, 9))):
            x = rng.uniform(lm[48][0] + 4 * k, lm[54][0] - 4 * k)
            y_top = min(lm[50][1], lm[52][1])
            p0 = np.array([x, y_top - rng.uniform(0.5, 2.0) * k])
            p2 = p0 + np.array([rng.normal(0.0, 1.0) * k, -rng.uniform(3.0, 7.0) * k])
            add("lip_lines", np.stack([p0, p2]), depth(0.08, 0.3), rng.uniform(0.35, 0.6))

    # Pores / skin grain in smooth patches.
    amp = float(rng.uniform(0.015, 0.05) * (0.6 + 0.4 * age))
    grain_sigma_mm = float(rng.uniform(0.3, 0.55))
    coarse = r // 16
    from PIL import Image

    small = ndimage.gaussian_filter(rng.normal(size=(coarse, coarse)), 1.2).astype(np.float32)
    patch_field = np.asarray(Image.fromarray(small, mode="F").resize((r, r), Image.Resampling.BILINEAR), np.float64)
    patch_field = (patch_field - patch_field.mean()) / max(patch_field.std(), 1e-9)
    cover = uv_raster(model, r).mask if r <= 2048 else np.ones((r, r), bool)
    coverage_frac = float(rng.uniform(0.3, 0.7))
    thr = np.quantile(patch_field[cover], 1.0 - coverage_frac) if cover.any() else 0.0
    patches = np.clip((patch_field - thr) / 0.6, 0.0, 1.0)
    grain = ndimage.gaussian_filter(rng.normal(size=(r, r)), grain_sigma_mm * cv.k)
    grain /= max(float(grain.std()), 1e-9)
    cv.disp += amp * patches * (-np.abs(grain))  # pits, not bumps

    disp = cv.disp * cover
    disp = np.sign(disp) * np.maximum(np.abs(disp) - SUPPORT_EPS_MM, 0.0)
    return DetailMap(
        displacement=disp.astype(np.float32),
        strength=age,
        strokes=strokes,
        pores={"amplitude_mm": round(amp, 4), "grain_sigma_mm": round(grain_sigma_mm, 3), "coverage": round(coverage_frac, 3)},
    )
