"""Fitting the ICT face model to a photo's 68 landmarks: pose, identity and expression.

A scaled-orthographic camera, the first identity modes and the expression blendshapes that
change the skin's shape (gaze and pupils excluded) are fitted to dlib's 68 landmarks by
alternating two linear solves (as eos fits the Surrey model):

1. **pose**: an affine camera from the current 3D landmarks to the 2D ones, made a rotation
   and a scale;
2. **jaw line**: dlib's jaw points follow the face's outline, not fixed skin points; each takes
   the vertex of its horizontal strip of the jaw (from the chin's side toward the ear) whose
   projection lies nearest to it;
3. **shape**: identity and the expression weights the landmarks can see
   (:data:`FITTED_EXPRESSIONS`) by bounded, regularised least squares
   (``scipy.optimize.lsq_linear``; expressions in [0, 1]); of two blendshapes that undo each
   other (:data:`ANTAGONISTS`) the weaker is then held at zero.

Open mouths (the inner-lip landmarks apart), closed eyes (the lids' landmarks together) and
raised or lowered brows come back as ``jawOpen``, ``eyeBlink_*``, ``brow*``. A fit takes about
20-40 ms.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from df2net.data.ict import IctModel

__all__ = ["IctFit", "IctFitConfig", "fit_ict_landmarks"]

#: Blendshapes the fit solves for: those whose effect the 68 landmarks see (the jaw, the lips'
#: outline and opening, the lids, the brows). The others (cheek puffs and raisers, dimples,
#: rolled or pressed lips, sneers, gaze) move few landmarks or move them as an identity does,
#: and a fit that may use them spends them on the face's width and the photo's perspective.
FITTED_EXPRESSIONS = (
    "jawOpen", "jawLeft", "jawRight",
    "mouthSmile_L", "mouthSmile_R", "mouthFrown_L", "mouthFrown_R", "mouthStretch_L", "mouthStretch_R",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthUpperUp_L", "mouthUpperUp_R", "mouthPucker", "mouthFunnel",
    "eyeBlink_L", "eyeBlink_R", "eyeWide_L", "eyeWide_R",
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
)  # fmt: skip

#: Blendshapes that undo each other: a face does one or the other, and a fit that may use both
#: spends them on the landmarks' noise. After a solve, the weaker of each pair is held at zero.
ANTAGONISTS = (
    ("jawLeft", "jawRight"),
    ("eyeWide_L", "eyeBlink_L"),
    ("eyeWide_R", "eyeBlink_R"),
    ("mouthSmile_L", "mouthFrown_L"),
    ("mouthSmile_R", "mouthFrown_R"),
    ("browDown_L", "browInnerUp_L"),
    ("browDown_R", "browInnerUp_R"),
    ("mouthPucker", "mouthStretch_L"),
    ("mouthPucker", "mouthStretch_R"),
)

#: 0-based jaw-line landmarks that slide along the outline (the chin, 8, holds).
_CONTOUR = tuple(k for k in range(17) if k != 8)


@dataclass(frozen=True)
class IctFitConfig:
    """Settings of :func:`fit_ict_landmarks` (regularisers in mm² per unit² of weight)."""

    n_identity: int = 40
    iterations: int = 6
    lambda_identity: float = 3.0
    lambda_expression: float = 4.0
    identity_bound: float = 3.0
    contour_strip_mm: float = 4.0


@dataclass(eq=False)
class IctFit:
    """An ICT face fitted to one face of an image.

    Attributes:
        identity: ``(K,)`` identity weights; ``expression``: ``(E,)`` blendshape weights.
        rotation: ``(3, 3)`` model-to-camera rotation (X right, Y up, Z toward the viewer).
        scale: image pixels per millimetre; ``translation``: ``(2,)`` image pixels.
        vertices: ``(N, 3)`` model-space vertices of the fitted face (mm).
        screen: ``(N, 3)`` those vertices in image pixels ``(u, v, z)``, z larger = nearer.
        image_size: ``(width, height)``.
        landmark_error_px: RMS distance of the fitted landmarks to the given ones.
        yaw_pitch_roll: degrees (``R = Rz(roll) Ry(yaw) Rx(pitch)``).
    """

    identity: np.ndarray
    expression: np.ndarray
    expression_names: list[str]
    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    vertices: np.ndarray
    screen: np.ndarray
    image_size: tuple[int, int]
    landmark_error_px: float
    yaw_pitch_roll: tuple[float, float, float]

    def params(self) -> dict[str, Any]:
        """JSON-ready description of the fit."""
        return {
            "face_model": "ict",
            "identity_coeffs": [round(float(c), 5) for c in self.identity],
            "expression": {n: round(float(v), 4) for n, v in zip(self.expression_names, self.expression) if v > 1e-3},
            "rotation": np.round(self.rotation, 6).tolist(),
            "yaw_pitch_roll_deg": [round(float(a), 3) for a in self.yaw_pitch_roll],
            "scale_px_per_mm_image": round(float(self.scale), 6),
            "image_size": list(self.image_size),
            "landmark_error_px": round(float(self.landmark_error_px), 3),
        }


def _angles(r: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` degrees of ``R = Rz(roll) Ry(yaw) Rx(pitch)``."""
    yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


@functools.lru_cache(maxsize=2)
def _contour_candidates(model: IctModel, strip_mm: float) -> tuple[np.ndarray, ...]:
    """Per sliding jaw landmark, the face vertices of its horizontal strip toward the ear."""
    from df2net.data.ict import Region

    face = np.nonzero(model.vertex_region == Region.SKIN)[0]
    face = face[face < model.n_face_vertices]
    p = model.mean[face]
    out = []
    for k in _CONTOUR:
        lm = model.mean[model.landmarks68[k]]
        side = np.sign(lm[0])
        keep = (np.abs(p[:, 1] - lm[1]) <= strip_mm) & (p[:, 0] * side >= abs(lm[0]) - 2.0) & (p[:, 2] <= lm[2] + 2.0)
        cand = face[keep]
        out.append(np.union1d(cand, [model.landmarks68[k]]))
    return tuple(out)


def _pose(points3d: np.ndarray, points2d: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Scaled-orthographic pose ``(R, s, t)`` with ``(u, v) = s [r1; -r2] X + t``."""
    a = np.c_[points3d, np.ones(len(points3d))]
    sol, *_ = np.linalg.lstsq(a, points2d, rcond=None)
    m = sol[:3].T  # (2, 3)
    rows = np.stack([m[0], -m[1]])
    u, sig, vt = np.linalg.svd(rows, full_matrices=False)
    r12 = u @ vt
    r = np.vstack([r12, np.cross(r12[0], r12[1])])
    s = float(sig.mean())
    t = points2d.mean(0) - s * (points3d.mean(0) @ np.stack([r[0], -r[1]]).T)
    return r, s, t


def _project(points: np.ndarray, r: np.ndarray, s: float, t: np.ndarray) -> np.ndarray:
    return s * points @ np.stack([r[0], -r[1]]).T + t


def fit_ict_landmarks(model: IctModel, landmarks: np.ndarray, width: int, height: int, cfg: IctFitConfig = IctFitConfig()) -> IctFit:
    """Fit pose, identity and expression to 68 landmarks ``(u, v)`` of a ``width x height`` image."""
    from scipy.optimize import lsq_linear

    lm2 = np.asarray(landmarks, np.float64)
    if lm2.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm2.shape}")
    k_id = min(cfg.n_identity, model.n_shape)
    exp_cols = np.array([model.expression_index(n) for n in FITTED_EXPRESSIONS])
    cands = _contour_candidates(model, cfg.contour_strip_mm)
    n_v = model.n_vertices
    basis_id = model.shape_basis[:, :k_id].reshape(n_v, 3, k_id)
    basis_ex = model.expression_basis[:, exp_cols].reshape(n_v, 3, len(exp_cols))
    idx = model.landmarks68.copy()
    w_id = np.zeros(k_id)
    w_ex = np.zeros(len(exp_cols))

    def shape_at(vert: np.ndarray) -> np.ndarray:
        return model.mean[vert] + basis_id[vert] @ w_id + basis_ex[vert] @ w_ex

    lower = np.r_[np.full(k_id, -cfg.identity_bound), np.zeros(len(exp_cols))]
    upper = np.r_[np.full(k_id, cfg.identity_bound), np.ones(len(exp_cols))]
    col = {n: i for i, n in enumerate(FITTED_EXPRESSIONS)}
    pairs = [(col[a], col[b]) for a, b in ANTAGONISTS]
    reg = np.sqrt(np.r_[np.full(k_id, cfg.lambda_identity), np.full(len(exp_cols), cfg.lambda_expression)])
    r, s, t = _pose(shape_at(idx), lm2)
    for _ in range(cfg.iterations):
        # Jaw line: each sliding landmark takes the strip vertex nearest to it in the image.
        for k, cand in zip(_CONTOUR, cands):
            proj = _project(shape_at(cand), r, s, t)
            idx[k] = cand[int(np.argmin(((proj - lm2[k]) ** 2).sum(1)))]
        r, s, t = _pose(shape_at(idx), lm2)
        # Shape: residuals in mm, linear in the weights.
        p2 = np.stack([r[0], -r[1]])  # (2, 3)
        a = np.concatenate([np.einsum("ij,ljk->lik", p2, basis_id[idx]), np.einsum("ij,ljk->lik", p2, basis_ex[idx])], axis=2)
        a = a.reshape(-1, a.shape[2])
        b = ((lm2 - t) / s - model.mean[idx] @ p2.T).reshape(-1)
        sol = lsq_linear(np.vstack([a, np.diag(reg)]), np.r_[b, np.zeros(len(reg))], bounds=(lower, upper), method="bvls")
        w_id, w_ex = sol.x[:k_id], sol.x[k_id:]
        for i, j in pairs:
            if w_ex[i] > 0 and w_ex[j] > 0:
                weaker = i if w_ex[i] < w_ex[j] else j
                upper[k_id + weaker] = 1e-12  # held at zero from here on
                w_ex[weaker] = 0.0
        r, s, t = _pose(shape_at(idx), lm2)
    expression = np.zeros(model.n_expression)
    expression[exp_cols] = w_ex
    identity = np.zeros(model.n_shape)
    identity[:k_id] = w_id
    vertices = model.vertices(identity, expression)
    screen = np.empty_like(vertices)
    screen[:, :2] = _project(vertices, r, s, t)
    screen[:, 2] = s * vertices @ r[2]
    err = float(np.sqrt(np.mean(((screen[idx, :2] - lm2) ** 2).sum(1))))
    return IctFit(
        identity=identity,
        expression=expression,
        expression_names=list(model.expression_names),
        rotation=r,
        scale=s,
        translation=t,
        vertices=vertices,
        screen=screen,
        image_size=(int(width), int(height)),
        landmark_error_px=err,
        yaw_pitch_roll=_angles(r),
    )
