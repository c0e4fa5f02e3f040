"""The ICT Face Model Light (MIT) as a face world: shapes, expressions, regions and a UV atlas.

The model comes from ``../shared/data/ict_face_model/ict_face_model_light.npz`` (USC ICT,
ICT-FaceKit; its README says what each array holds) and is needed only to make data, never at
inference. It is read into the same frame as :mod:`df2net.data.sfm`: millimetres, X to the
subject's left (image right in a frontal view), Y up, Z toward the viewer.

- **Identity**: 100 modes from light-stage scans (weights ~ N(0, 1)).
- **Expression**: 57 ARKit blendshapes (weights in [0, 1]); :func:`random_expression` draws
  mixes as people make them (open mouths up to a full ``jawOpen``, smiles with teeth, blinks,
  wide eyes, raised and furrowed brows, asymmetric ones).
- **Regions**: the rendered surface is the skin (face, head and neck), the mouth interior
  (socket, gums and tongue, teeth), the eye sockets and the eyeballs; each has its own colour in
  a render (:data:`REGION_ALBEDO`), so an open mouth shows its cavity and teeth, not skin. The
  transparent shells (eyelashes, tear film, eye occlusion) are not drawn.
- **UV atlas**: every vertex gets texture coordinates in the Surrey Face Model's layout
  (:func:`atlas_uv`: the ICT neutral face registered to the SFM's mean face, then each vertex
  takes the texture coordinate of the nearest point of the registered SFM surface). So the
  photo textures, the procedural relief and the albedo-only marks, all drawn in that layout
  (:mod:`df2net.data.uv`), dress an ICT face unchanged, and move with its skin when it moves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from df2net.data.linear_model import LinearFaceModel
from df2net.data.sfm import SurreyModel, Subdivision, default_shared_data_dir, load_sfm, loop_subdivision

if TYPE_CHECKING:
    from df2net.data.synthetic import SyntheticConfig

__all__ = [
    "IctModel",
    "REGION_ALBEDO",
    "Region",
    "default_ict_path",
    "load_ict",
    "random_expression",
    "random_iris",
    "expression_semantics",
]

#: The packed model file inside the shared data folder.
ICT_FILE = "ict_face_model/ict_face_model_light.npz"

#: The model's arrays are in centimetres; df2net's model space is in millimetres.
MM_PER_UNIT = 10.0


class Region:
    """Integer codes of the rendered regions (per vertex and per triangle)."""

    SKIN = 0
    MOUTH = 1  # the mouth socket (the cavity behind the lips)
    GUMS = 2  # gums and tongue
    TEETH = 3
    EYE_SOCKET = 4
    EYEBALL = 5



#: Linear-light albedo of the non-skin regions (the skin takes the photo texture). The eyeball's
#: is its sclera; the iris and pupil are drawn by :meth:`IctModel.eyeball_albedo`.
REGION_ALBEDO = {
    Region.MOUTH: (0.16, 0.035, 0.035),
    Region.GUMS: (0.42, 0.11, 0.11),
    Region.TEETH: (0.62, 0.58, 0.50),
    Region.EYE_SOCKET: (0.20, 0.08, 0.07),
    Region.EYEBALL: (0.62, 0.58, 0.55),
}

#: Which of the npz's named vertex ranges each region is made of.
_REGION_PARTS = {
    Region.SKIN: ("face", "head_and_neck"),
    Region.MOUTH: ("mouth_socket",),
    Region.GUMS: ("gums_and_tongue",),
    Region.TEETH: ("teeth",),
    Region.EYE_SOCKET: ("eye_socket_left", "eye_socket_right"),
    Region.EYEBALL: ("eyeball_left", "eyeball_right"),
}

#: 0-based iBUG landmarks used to register the ICT face to the SFM's: the inner face (brows,
#: nose, eyes, outer lips), whose vertices mean the same thing on both models.
_REGISTRATION_LANDMARKS = tuple(range(17, 60))


def default_ict_path() -> Path:
    """``<shared data>/ict_face_model/ict_face_model_light.npz``."""
    return default_shared_data_dir() / ICT_FILE


@dataclass(eq=False)
class IctModel(LinearFaceModel):
    """The ICT Face Model Light as arrays in df2net's model frame (millimetres).

    Attributes:
        mean: ``(N, 3)`` float64 neutral vertices.
        shape_basis: ``(3N, K)`` float32 identity modes (coefficients ~ N(0, 1)).
        expression_basis: ``(3N, E)`` float32 blendshape offsets (weights in [0, 1]).
        expression_names: the E ARKit blendshape names.
        triangles: ``(M, 3)`` int64 triangles of the rendered regions, counter-clockwise from
            the front.
        triangle_region: ``(M,)`` int8 :class:`Region` of each triangle.
        vertex_region: ``(N,)`` int8 region of each vertex (-1: not rendered).
        uv: ``(N, 2)`` texture coordinates in the SFM atlas (``v`` down), see :func:`atlas_uv`.
        landmarks68: ``(68,)`` the vertex of each iBUG landmark (0-based, dlib order).
        landmark_vertices: 1-based iBUG landmark -> vertex, for the landmarks whose vertex is
            fixed on the surface (the chin and 18-68; the jaw line's others slide with the pose).
        atlas: the SFM whose UV layout the textures, relief and marks are drawn in.
        path: the npz it came from.
    """

    mean: np.ndarray
    shape_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: list[str]
    triangles: np.ndarray
    triangle_region: np.ndarray
    vertex_region: np.ndarray
    uv: np.ndarray
    landmarks68: np.ndarray
    landmark_vertices: dict[int, int]
    atlas: SurreyModel
    path: Path
    eyeball_dir: np.ndarray  # (N, 3) unit direction from its eyeball's centre (0 elsewhere)
    n_face_vertices: int  # the npz's ``face`` region comes first: vertices [0, n_face_vertices)
    atlas_mm: np.ndarray  # (N,) distance of each vertex to the registered SFM surface (mm)

    name = "ict"

    def expression_index(self, name: str) -> int:
        """Column of the blendshape ``name`` (e.g. ``"jawOpen"``)."""
        return self.expression_names.index(name)

    def subdivision(self, levels: int = 1) -> Subdivision:
        """Loop subdivision of the rendered triangles (built once per process and level count)."""
        return _ict_subdivision(self, int(levels))

    def model_files(self) -> dict[str, str | None]:
        """Where the model was loaded from, as a manifest records it: its atlas's SFM folder and the npz."""
        return {"sfm_dir": str(self.atlas.sfm_dir), "ict_model": str(self.path)}

    def triangle_regions(self, triangles: np.ndarray) -> np.ndarray:
        """:class:`Region` code (int8) of each of ``triangles`` (indices)."""
        return self.triangle_region[triangles]

    def draw_expression(self, rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[np.ndarray, dict[str, float], dict[str, float]]:
        """A mix as people make them (:func:`random_expression`; ``cfg``'s per-blendshape ranges are the Surrey world's).

        Returns ``(weights, the nonzero weights by name, emotion weights from
        :func:`expression_semantics`)``.
        """
        expr = random_expression(rng, self.expression_names)
        named = {n: round(float(v), 4) for n, v in zip(self.expression_names, expr) if v > 0}
        return expr, named, expression_semantics(expr, self.expression_names)

    def draw_appearance(self, rng: np.random.Generator) -> dict[str, Any]:
        """The eyes' and mouth's looks: ``iris`` (:func:`random_iris`) and ``interior_light`` (the mouth cavity is lit less than skin)."""
        iris = random_iris(rng)
        return {"iris": iris, "interior_light": rng.uniform(0.25, 0.6)}

    def fit_landmarks(self, landmarks: np.ndarray, width: int, height: int) -> Any:
        """The fit to 68 landmarks of :func:`df2net.data.ict_fit.fit_ict_landmarks`."""
        from df2net.data.ict_fit import fit_ict_landmarks

        return fit_ict_landmarks(self, landmarks, width, height)

    def pull_texture(self, rgb: np.ndarray, fit: Any, resolution: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """A photo's texture after :meth:`fit_landmarks` (:func:`df2net.data.textures.pull_ict_texture`)."""
        from df2net.data.textures import pull_ict_texture

        return pull_ict_texture(rgb, fit, self, resolution)

    def atlas_triangles(self, max_mm: float = 3.0) -> np.ndarray:
        """``(M', 3)`` skin triangles the SFM atlas covers (every corner within ``max_mm`` of it).

        Past the SFM's rim (ears, scalp, neck) the texture coordinates are the rim's, folded:
        those triangles are left out of anything drawn in texture space.
        """
        t = self.triangles[self.triangle_region == Region.SKIN]
        return t[(self.atlas_mm[t] <= max_mm).all(1)]

    def eyeball_albedo(self, directions: np.ndarray, iris_colour: np.ndarray, iris_cos: float = 0.93, pupil_cos: float = 0.985) -> np.ndarray:
        """Linear albedo ``(P, 3)`` of eyeball points from their directions ``(P, 3)`` (see ``eyeball_dir``).

        Sclera, then the iris and the pupil as caps around the eyeball's forward axis (+Z).
        """
        d = np.asarray(directions, np.float64)
        cz = d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        out = np.tile(np.asarray(REGION_ALBEDO[Region.EYEBALL], np.float64), (len(d), 1))
        iris = np.clip((cz - iris_cos) / 0.01, 0.0, 1.0)[:, None]
        pupil = np.clip((cz - pupil_cos) / 0.004, 0.0, 1.0)[:, None]
        out = out * (1 - iris) + np.asarray(iris_colour, np.float64) * iris
        return out * (1 - pupil) + 0.01 * pupil


def random_iris(rng: np.random.Generator) -> np.ndarray:
    """Linear albedo of an iris: mostly browns, some hazel, blue and grey."""
    palette = np.array([[0.05, 0.025, 0.012], [0.10, 0.055, 0.02], [0.09, 0.08, 0.03], [0.06, 0.09, 0.13], [0.09, 0.10, 0.10]])
    pick = palette[rng.choice(len(palette), p=[0.45, 0.2, 0.12, 0.13, 0.1])]
    return np.clip(pick * rng.uniform(0.7, 1.4), 0.0, 1.0)


def _triangulate(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quads (a triangle has -1 as its fourth index) -> ``(triangles, source polygon)``."""
    p = np.asarray(polygons, np.int64)
    quad = p[:, 3] >= 0
    t1 = p[:, [0, 1, 2]]
    t2 = p[quad][:, [0, 2, 3]]
    src = np.concatenate([np.arange(len(p)), np.nonzero(quad)[0]])
    return np.concatenate([t1, t2]), src


def _fit_sfm_to(sfm: SurreyModel, target: np.ndarray, sfm_index: np.ndarray, reg: float) -> np.ndarray:
    """SFM shape coefficients whose vertices ``sfm_index`` best match ``target`` (least squares)."""
    rows = (3 * sfm_index[:, None] + np.arange(3)).ravel()
    a = sfm.shape_basis[rows]
    b = (target - sfm.mean[sfm_index]).ravel()
    return np.linalg.solve(a.T @ a + reg * np.eye(a.shape[1]), a.T @ b)


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: ``(s, R, t)`` minimising ``|s R src + t - dst|``."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.eye(3)
    d[2, 2] = np.sign(np.linalg.det(u @ vt))
    r = u @ d @ vt
    s = float(np.trace(np.diag(sig) @ d) / (a**2).sum())
    return s, r, mu_d - s * r @ mu_s


def atlas_uv(neutral: np.ndarray, landmarks68: np.ndarray, skin: np.ndarray, sfm: SurreyModel, iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates ``(N, 2)`` of ICT vertices in the SFM's UV layout, and their distance (mm) to the SFM.

    The ICT neutral face is moved onto the SFM mean by a similarity on the inner-face landmarks;
    the SFM is then bent toward it (its shape coefficients, fitted to the landmarks and, for a
    few rounds, to the nearest ICT skin vertex of each SFM vertex); every ICT vertex takes the
    texture coordinate of the nearest vertex of the bent SFM, Loop-subdivided twice (about 1 mm
    apart); last, a thin-plate warp of the layout moves the inner-face landmarks onto the SFM's.
    """
    from scipy.spatial import cKDTree

    lm_idx, lm_vert = [], []
    for k, v in sfm.landmark_vertices.items():
        if k - 1 in _REGISTRATION_LANDMARKS:
            lm_idx.append(int(landmarks68[k - 1]))
            lm_vert.append(v)
    ict_lm, sfm_lm = neutral[lm_idx], np.asarray(lm_vert)
    s, r, t = _similarity(ict_lm, sfm.mean[sfm_lm])
    moved = neutral @ r.T * s + t
    coeffs = _fit_sfm_to(sfm, moved[lm_idx], sfm_lm, reg=5.0)
    tree = cKDTree(moved[skin])
    for _ in range(iterations):
        cur = sfm.vertices(coeffs)
        dist, nn = tree.query(cur)
        near = dist < np.percentile(dist, 90)  # the SFM's rim may lie past the ICT face
        idx = np.concatenate([np.nonzero(near)[0], sfm_lm])
        tgt = np.concatenate([moved[skin][nn[near]], moved[lm_idx]])
        coeffs = _fit_sfm_to(sfm, tgt, idx, reg=2.0)
    sub = loop_subdivision(sfm.triangles, sfm.n_vertices, 2)
    dense = sub.apply(sfm.vertices(coeffs))
    dense_uv = sub.apply_linear(sfm.uv)
    dist, nn = cKDTree(dense).query(moved)
    uv = dense_uv[nn]
    # The nearest points put the landmarks within a few texels of the SFM's; a smooth warp of the
    # layout (thin-plate spline of the landmarks' differences) puts them on them, so relief and
    # marks placed by landmarks sit where the ICT face has those features.
    from scipy.interpolate import RBFInterpolator

    warp = RBFInterpolator(uv[lm_idx], sfm.uv[sfm_lm] - uv[lm_idx], kernel="thin_plate_spline", smoothing=1e-5)
    uv = np.clip(uv + warp(uv), 0.0, 1.0)
    return uv, dist / s  # the distance in the ICT's own millimetres


def _eyeball_directions(neutral: np.ndarray, ranges: dict[str, tuple[int, int]]) -> np.ndarray:
    out = np.zeros_like(neutral)
    for name in ("eyeball_left", "eyeball_right"):
        a, b = ranges[name]
        pts = neutral[a : b + 1]
        # The sphere's centre: least squares on |p - c|^2 = r^2 (linear in c and r^2 - |c|^2).
        m = np.c_[2 * pts, np.ones(len(pts))]
        sol, *_ = np.linalg.lstsq(m, (pts**2).sum(1), rcond=None)
        d = pts - sol[:3]
        out[a : b + 1] = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    return out


@functools.lru_cache(maxsize=2)
def _load_ict_cached(path: str, sfm_dir: str) -> IctModel:
    data = np.load(path)
    names = [str(n) for n in data["region_names"]]
    ranges = {n: (int(a), int(b)) for n, (a, b) in zip(names, data["region_vertices"])}
    neutral = data["neutral"].astype(np.float64) * MM_PER_UNIT
    n = len(neutral)
    vertex_region = np.full(n, -1, np.int8)
    for code, parts in _REGION_PARTS.items():
        for part in parts:
            a, b = ranges[part]
            vertex_region[a : b + 1] = code
    tris, _ = _triangulate(data["faces"])
    corner_region = vertex_region[tris]
    # A triangle is drawn when all its corners are; its region is its first corner's.
    drawn = (corner_region >= 0).all(1)
    tris = tris[drawn]
    tri_region = corner_region[drawn, 0]
    sfm = load_sfm(sfm_dir)
    skin = np.nonzero(vertex_region == Region.SKIN)[0]
    lm68 = data["landmarks68"].astype(np.int64)
    uv, atlas_mm = atlas_uv(neutral, lm68, skin, sfm)
    fixed = {k + 1: int(lm68[k]) for k in range(17, 68)}
    fixed[9] = int(lm68[8])  # the chin's point holds in every pose
    basis = lambda a: np.ascontiguousarray((a.astype(np.float32) * MM_PER_UNIT).reshape(len(a), -1).T)  # noqa: E731
    return IctModel(
        mean=neutral,
        shape_basis=basis(data["identity_modes"]),
        expression_basis=basis(data["expression_modes"]),
        expression_names=[str(x) for x in data["expression_names"]],
        triangles=tris,
        triangle_region=tri_region.astype(np.int8),
        vertex_region=vertex_region,
        uv=uv,
        landmarks68=lm68,
        landmark_vertices=fixed,
        atlas=sfm,
        path=Path(path),
        eyeball_dir=_eyeball_directions(neutral, ranges),
        n_face_vertices=ranges["face"][1] + 1,
        atlas_mm=atlas_mm,
    )


def load_ict(path: str | Path | None = None, sfm_dir: str | Path | None = None) -> IctModel:
    """Load (once per process) the ICT model and register it to the SFM atlas.

    Raises:
        FileNotFoundError: the npz is missing.
    """
    p = Path(path) if path is not None else default_ict_path()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: ICT Face Model file not found (pass --ict-model)")
    sfm = load_sfm(sfm_dir)
    return _load_ict_cached(str(p.resolve()), str(sfm.sfm_dir))


@functools.lru_cache(maxsize=4)
def _ict_subdivision(model: IctModel, levels: int) -> Subdivision:
    return loop_subdivision(model.triangles, model.n_vertices, levels)


# ------------------------------------------------------------------------------------------
# Expressions as people make them
# ------------------------------------------------------------------------------------------

#: Archetypes: ``(probability, {blendshape: (low, high)})``; ``_L``/``_R`` pairs are written
#: once as ``name_LR`` and drawn symmetric or, sometimes, lopsided.
_ARCHETYPES: tuple[tuple[float, dict[str, tuple[float, float]]], ...] = (
    (0.12, {}),  # near neutral
    (0.16, {"jawOpen": (0.3, 1.0), "mouthLowerDown_LR": (0.0, 0.6), "mouthUpperUp_LR": (0.0, 0.5), "mouthStretch_LR": (0.0, 0.5)}),  # open mouth, talking, shouting
    (0.08, {"jawOpen": (0.5, 1.0), "browInnerUp_LR": (0.4, 1.0), "browOuterUp_LR": (0.4, 1.0), "eyeWide_LR": (0.3, 1.0), "mouthFunnel": (0.0, 0.4)}),  # surprise
    (0.14, {"mouthSmile_LR": (0.4, 1.0), "cheekSquint_LR": (0.2, 0.8), "eyeSquint_LR": (0.0, 0.6), "cheekRaiser_LR": (0.0, 0.7)}),  # closed smile
    (0.12, {"mouthSmile_LR": (0.5, 1.0), "jawOpen": (0.1, 0.45), "mouthUpperUp_LR": (0.2, 0.7), "mouthLowerDown_LR": (0.2, 0.7), "cheekSquint_LR": (0.2, 0.9), "eyeSquint_LR": (0.0, 0.6)}),  # smile with teeth, laugh
    (0.08, {"eyeBlink_LR": (0.6, 1.0)}),  # eyes closed
    (0.07, {"eyeBlink_LR": (0.25, 0.6), "eyeSquint_LR": (0.0, 0.5)}),  # half-closed eyes
    (0.08, {"browDown_LR": (0.4, 1.0), "noseSneer_LR": (0.0, 0.7), "mouthFrown_LR": (0.0, 0.7), "mouthPress_LR": (0.0, 0.6), "eyeSquint_LR": (0.0, 0.5)}),  # frown, anger
    (0.05, {"browInnerUp_LR": (0.4, 1.0), "mouthFrown_LR": (0.3, 0.9), "mouthShrugLower": (0.0, 0.6)}),  # sadness
    (0.04, {"mouthPucker": (0.4, 1.0), "mouthFunnel": (0.0, 0.6)}),  # pucker
    (0.03, {"cheekPuff_LR": (0.5, 1.0), "mouthClose": (0.0, 0.3)}),  # cheek puff
    (0.03, {"noseSneer_LR": (0.5, 1.0), "mouthUpperUp_LR": (0.3, 0.8), "browDown_LR": (0.0, 0.5)}),  # disgust, sneer
)

#: Blendshapes never drawn (the eyes' gaze and pupils do not change the skin's shape).
_QUIET = ("PupilDilate", "eyeLook")


def random_expression(rng: np.random.Generator, names: list[str], lopsided_prob: float = 0.25) -> np.ndarray:
    """Blendshape weights ``(E,)`` in [0, 1]: one or two archetypes, lopsided sometimes, plus a little of others.

    About a third of the faces get an open mouth (``jawOpen`` 0.3-1.0), a sixth closed or
    half-closed eyes, a quarter a smile.
    """
    idx = {n: i for i, n in enumerate(names)}
    w = np.zeros(len(names))
    probs = np.array([p for p, _ in _ARCHETYPES])
    n_arch = 1 + int(rng.uniform() < 0.3)
    for a in rng.choice(len(_ARCHETYPES), size=n_arch, replace=False, p=probs / probs.sum()):
        strength = 1.0 if n_arch == 1 else rng.uniform(0.5, 1.0)
        lopsided = rng.uniform() < lopsided_prob
        for name, (lo, hi) in _ARCHETYPES[a][1].items():
            val = rng.uniform(lo, hi) * strength
            if name.endswith("_LR"):
                base = name[:-3]
                side = rng.uniform(0.0, 0.6) if lopsided else rng.uniform(0.85, 1.0)
                left, right = (val, val * side) if rng.uniform() < 0.5 else (val * side, val)
                w[idx[base + "_L"]] = max(w[idx[base + "_L"]], left)
                w[idx[base + "_R"]] = max(w[idx[base + "_R"]], right)
            else:
                w[idx[name]] = max(w[idx[name]], val)
    # A little of everything else, as faces are never pure archetypes.
    loose = np.array([not n.startswith(_QUIET) for n in names])
    extra = (rng.uniform(size=len(names)) < 0.08) & loose
    w = np.where(extra, np.maximum(w, rng.uniform(0.0, 0.2, len(names))), w)
    return np.clip(w, 0.0, 1.0)


def expression_semantics(weights: np.ndarray, names: list[str]) -> dict[str, float]:
    """The blendshape mix as the emotion weights :func:`df2net.data.detail.random_detail_map` reads.

    (surprise: raised brows; happiness: smile and cheek squint; anger: lowered brows; sadness:
    frown; disgust: sneer), each in [0, 1].
    """
    w = dict(zip(names, np.asarray(weights, np.float64)))

    def pair(name: str) -> float:
        return 0.5 * (w.get(name + "_L", 0.0) + w.get(name + "_R", 0.0))

    return {
        "surprise": round(max(pair("browInnerUp"), pair("browOuterUp")), 4),
        "happiness": round(0.5 * (pair("mouthSmile") + pair("cheekSquint")), 4),
        "anger": round(pair("browDown"), 4),
        "sadness": round(pair("mouthFrown"), 4),
        "disgust": round(pair("noseSneer"), 4),
    }
