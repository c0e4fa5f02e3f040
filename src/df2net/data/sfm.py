"""The Surrey Face Model (SFM, low resolution): loading, sampling, posing and subdivision.

The model files come from ``../shared/data/sfm`` (eos's ``share/`` folder) and are needed only to
make data, never at inference. Model space is in millimetres, X to the subject's left (image
right in a frontal view), Y up, Z toward the viewer; triangles are counter-clockwise seen from the
front. Texture coordinates are per vertex (no seams) with ``v = 0`` at the top of the texture and
a left-right symmetric layout (the mirror of texel ``(u, v)`` is ``(1 - u, v)``).

Shape coefficients are in standard deviations (``eos``'s rescaled PCA basis); the six expression
blendshapes (anger, disgust, fear, happiness, sadness, surprise) are added with free weights.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from df2net.data.linear_model import LinearFaceModel

if TYPE_CHECKING:
    from df2net.data.fitting import FaceFit
    from df2net.data.synthetic import SyntheticConfig

__all__ = [
    "SurreyModel",
    "Subdivision",
    "default_sfm_dir",
    "load_sfm",
    "loop_subdivision",
    "model_subdivision",
    "rotation_matrix",
    "project_orthographic",
]

#: Files of the SFM folder that :func:`load_sfm` reads.
SHAPE_FILE = "sfm_shape_3448.bin"
BLENDSHAPES_FILE = "expression_blendshapes_3448.bin"
MAPPING_FILE = "ibug_to_sfm.txt"
EDGE_TOPOLOGY_FILE = "sfm_3448_edge_topology.json"
CONTOURS_FILE = "sfm_model_contours.json"

#: Depth is measured from a plane this far (mm) behind the model's origin, so that it is positive
#: on every face surface (the model lies within about 130 mm of its origin) and 0 can mean "no
#: surface" (``docs/conventions.md``: depth is defined up to an additive offset).
DEPTH_OFFSET_MM = 200.0

#: Environment variable that overrides where the shared data lives (``.../shared/data``).
SHARED_DATA_ENV = "DF2NET_SHARED_DATA"


def default_shared_data_dir() -> Path:
    """``../shared/data`` beside the repository (or ``$DF2NET_SHARED_DATA``).

    Tried in order: the environment variable, the folder beside the source checkout this file
    lives in, then ``../shared/data`` relative to the working directory.
    """
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    candidate = repo.parent / "shared" / "data"
    if candidate.is_dir():
        return candidate
    return Path("..") / "shared" / "data"


def default_sfm_dir() -> Path:
    """The SFM folder: ``<shared data>/sfm``."""
    return default_shared_data_dir() / "sfm"


def _read_landmark_mapping(path: Path) -> dict[int, int]:
    """The ``[landmark_mappings]`` table of ``ibug_to_sfm.txt``: 1-based iBUG index -> vertex."""
    mapping: dict[int, int] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        if section == "landmark_mappings" and "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            mapping[int(key)] = int(value)
    return mapping


@dataclass(eq=False)
class SurreyModel(LinearFaceModel):
    """The SFM as numpy arrays (and, lazily, the eos objects that fit it to landmarks).

    Attributes:
        mean: ``(N, 3)`` float64 mean shape, millimetres.
        shape_basis: ``(3N, K)`` basis whose coefficients are in standard deviations.
        expression_basis: ``(3N, E)`` blendshape offsets.
        expression_names: the E blendshape names.
        triangles: ``(M, 3)`` int64, counter-clockwise from the front.
        uv: ``(N, 2)`` texture coordinates in [0, 1], ``v`` down.
        landmark_vertices: 1-based iBUG landmark number -> vertex index (those the SFM defines).
        sfm_dir: the folder it came from.
    """

    mean: np.ndarray
    shape_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: list[str]
    triangles: np.ndarray
    uv: np.ndarray
    landmark_vertices: dict[int, int]
    sfm_dir: Path
    _eos: dict[str, Any] = field(default_factory=dict, repr=False)

    name = "sfm"
    #: No eyes: the SFM is the face's skin only.
    eyeball_dir = None

    @property
    def atlas(self) -> SurreyModel:
        """The model whose UV layout textures, relief and marks are drawn in: the SFM itself."""
        return self

    def subdivision(self, levels: int = 1) -> Subdivision:
        """The model's Loop subdivision (built once per process and level count)."""
        return model_subdivision(self, levels)

    def model_files(self) -> dict[str, str | None]:
        """Where the model was loaded from, as a manifest records it: the SFM folder (no ICT model)."""
        return {"sfm_dir": str(self.sfm_dir), "ict_model": None}

    def triangle_regions(self, triangles: np.ndarray) -> np.ndarray:
        """Region code of each of ``triangles`` (indices): all :attr:`df2net.data.ict.Region.SKIN`."""
        from df2net.data.ict import Region

        return np.full(np.shape(triangles), Region.SKIN, np.int8)

    def draw_expression(self, rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[np.ndarray, dict[str, float], dict[str, float]]:
        """Each of the six blendshapes on with probability ``cfg.expression_prob``, weight in ``[0, cfg.expression_max)``.

        Returns ``(weights, weights by name, emotion weights)``; the blendshapes are emotions,
        so the named weights are the relief's emotion weights too.
        """
        on = rng.uniform(size=self.n_expression) < cfg.expression_prob
        expr = np.where(on, rng.uniform(0.0, cfg.expression_max, self.n_expression), 0.0)
        named = {n: round(float(v), 4) for n, v in zip(self.expression_names, expr)}
        return expr, named, named

    def draw_appearance(self, rng: np.random.Generator) -> dict[str, Any]:
        """Nothing: ``rng`` is left untouched, so older Surrey sets keep their random streams."""
        return {}

    def fit_landmarks(self, landmarks: np.ndarray, width: int, height: int) -> FaceFit:
        """eos's fit to 68 landmarks (:func:`df2net.data.fitting.fit_landmarks`)."""
        from df2net.data.fitting import fit_landmarks

        return fit_landmarks(self, landmarks, width, height)

    def pull_texture(self, rgb: np.ndarray, fit: Any, resolution: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """A photo's texture after :meth:`fit_landmarks`, by eos (:func:`df2net.data.textures.pull_sfm_texture`)."""
        from df2net.data.textures import pull_sfm_texture

        return pull_sfm_texture(rgb, fit, self, resolution)

    def eos_objects(self) -> dict[str, Any]:
        """The eos model (shape + blendshapes), landmark mapper, edge topology and contours."""
        if not self._eos:
            import eos  # only data making needs eos

            d = str(self.sfm_dir)
            shape = eos.morphablemodel.load_model(os.path.join(d, SHAPE_FILE))
            blend = eos.morphablemodel.load_blendshapes(os.path.join(d, BLENDSHAPES_FILE))
            self._eos["model"] = eos.morphablemodel.MorphableModel(
                shape.get_shape_model(),
                blend,
                color_model=eos.morphablemodel.PcaModel(),
                vertex_definitions=None,
                texture_coordinates=shape.get_texture_coordinates(),
            )
            self._eos["mapper"] = eos.core.LandmarkMapper(os.path.join(d, MAPPING_FILE))
            self._eos["edge_topology"] = eos.morphablemodel.load_edge_topology(os.path.join(d, EDGE_TOPOLOGY_FILE))
            self._eos["contour_landmarks"] = eos.fitting.ContourLandmarks.load(os.path.join(d, MAPPING_FILE))
            self._eos["model_contour"] = eos.fitting.ModelContour.load(os.path.join(d, CONTOURS_FILE))
        return self._eos


@functools.lru_cache(maxsize=4)
def _load_sfm_cached(sfm_dir: str) -> SurreyModel:
    import eos

    d = Path(sfm_dir)
    shape = eos.morphablemodel.load_model(str(d / SHAPE_FILE))
    pca = shape.get_shape_model()
    blend = eos.morphablemodel.load_blendshapes(str(d / BLENDSHAPES_FILE))
    mean = np.asarray(pca.get_mean(), np.float64)
    return SurreyModel(
        mean=mean.reshape(-1, 3),
        shape_basis=np.asarray(pca.get_rescaled_pca_basis(), np.float64),
        expression_basis=np.stack([np.asarray(b.deformation, np.float64) for b in blend], 1),
        expression_names=[b.name for b in blend],
        triangles=np.asarray(pca.get_triangle_list(), np.int64),
        uv=np.asarray(shape.get_texture_coordinates(), np.float64),
        landmark_vertices=_read_landmark_mapping(d / MAPPING_FILE),
        sfm_dir=d,
    )


def load_sfm(sfm_dir: str | Path | None = None) -> SurreyModel:
    """Load (once per process and folder) the SFM shape model, blendshapes and landmark map.

    Raises:
        FileNotFoundError: the folder lacks the model files.
    """
    d = Path(sfm_dir) if sfm_dir is not None else default_sfm_dir()
    for name in (SHAPE_FILE, BLENDSHAPES_FILE, MAPPING_FILE):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d / name}: Surrey Face Model file not found (pass --sfm-dir)")
    return _load_sfm_cached(str(d.resolve()))


# ------------------------------------------------------------------------------------------
# Subdivision
# ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Subdivision:
    """A fixed linear subdivision of a triangle mesh: ``new_vertices = matrix @ vertices``.

    Attributes:
        matrix: ``(N', N)`` sparse CSR, Loop weights (smooths positions toward the limit surface).
        linear: ``(N', N)`` sparse CSR, midpoint weights (for attributes such as UVs that must keep
            the coarse mesh's piecewise-linear map).
        faces: ``(M', 3)`` int64 triangles of the subdivided mesh, same winding.
        n_coarse: N; the first N new vertices are the old ones (same index).
    """

    matrix: sp.csr_matrix
    linear: sp.csr_matrix
    faces: np.ndarray
    n_coarse: int

    def apply(self, vertices: np.ndarray) -> np.ndarray:
        """Subdivided positions of ``(N, C)`` coarse ones (any affine image of them too)."""
        return np.asarray(self.matrix @ np.asarray(vertices, np.float64))

    def apply_linear(self, attributes: np.ndarray) -> np.ndarray:
        """Piecewise-linear (midpoint) subdivision of ``(N, C)`` attributes."""
        return np.asarray(self.linear @ np.asarray(attributes, np.float64))


def _loop_once(faces: np.ndarray, n: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """One Loop step: (Loop matrix, midpoint matrix, new faces)."""
    f = np.asarray(faces, np.int64)
    m = len(f)
    # Directed half-edges (a -> b) with the opposite vertex c of their triangle.
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    c = np.concatenate([f[:, 2], f[:, 0], f[:, 1]])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * n + hi
    ukey, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    n_edges = len(ukey)
    e_lo, e_hi = ukey // n, ukey % n
    boundary = counts == 1

    # Edge (odd) vertices: 3/8 (a + b) + 1/8 (c + d) inside, 1/2 (a + b) on the boundary.
    rows = [np.arange(n_edges), np.arange(n_edges)]
    cols = [e_lo, e_hi]
    vals = [np.where(boundary, 0.5, 0.375), np.where(boundary, 0.5, 0.375)]
    interior_half = ~boundary[inv]
    rows.append(inv[interior_half])
    cols.append(c[interior_half])
    vals.append(np.full(int(interior_half.sum()), 0.125))
    odd = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_edges, n))
    odd_lin = sp.csr_matrix(
        (np.full(2 * n_edges, 0.5), (np.tile(np.arange(n_edges), 2), np.concatenate([e_lo, e_hi]))), shape=(n_edges, n)
    )

    # Old (even) vertices: Loop's beta rule inside, 3/4 v + 1/8 (boundary neighbours) on it.
    adj = sp.csr_matrix((np.ones(2 * n_edges), (np.concatenate([e_lo, e_hi]), np.concatenate([e_hi, e_lo]))), shape=(n, n))
    valence = np.asarray(adj.sum(1)).ravel()
    bedge_lo, bedge_hi = e_lo[boundary], e_hi[boundary]
    badj = sp.csr_matrix(
        (np.ones(2 * len(bedge_lo)), (np.concatenate([bedge_lo, bedge_hi]), np.concatenate([bedge_hi, bedge_lo]))),
        shape=(n, n),
    )
    on_boundary = np.asarray(badj.sum(1)).ravel() > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(
            valence > 3, 3.0 / (8.0 * valence), np.where(valence == 3, 3.0 / 16.0, 0.0)
        )
    self_w = np.where(on_boundary, 0.75, 1.0 - valence * beta)
    nb = sp.diags(np.where(on_boundary, 0.0, beta)) @ adj + sp.diags(np.where(on_boundary, 0.125, 0.0)) @ badj
    even = (sp.diags(self_w) + nb).tocsr()  # an unused vertex (valence 0) keeps its place

    matrix = sp.vstack([even, odd]).tocsr()
    linear = sp.vstack([sp.identity(n, format="csr"), odd_lin]).tocsr()

    # Four children per triangle; edge vertex ids are n + edge index.
    e_ab = n + inv[:m]
    e_bc = n + inv[m : 2 * m]
    e_ca = n + inv[2 * m :]
    new_faces = np.concatenate(
        [
            np.stack([f[:, 0], e_ab, e_ca], 1),
            np.stack([e_ab, f[:, 1], e_bc], 1),
            np.stack([e_ca, e_bc, f[:, 2]], 1),
            np.stack([e_ab, e_bc, e_ca], 1),
        ]
    )
    return matrix, linear, new_faces


def loop_subdivision(faces: np.ndarray, n_vertices: int, levels: int = 1) -> Subdivision:
    """Build the Loop subdivision matrices of a mesh (boundary-aware), ``levels`` times over.

    The matrices depend only on the connectivity, so they are built once and reused for every
    shape: ``Subdivision.apply(V)`` for any vertex positions ``V`` of the coarse mesh.
    """
    n = int(n_vertices)
    total = sp.identity(n, format="csr")
    total_lin = sp.identity(n, format="csr")
    f = np.asarray(faces, np.int64)
    cur = n
    for _ in range(levels):
        mat, lin, f = _loop_once(f, cur)
        total = (mat @ total).tocsr()
        total_lin = (lin @ total_lin).tocsr()
        cur = mat.shape[0]
    return Subdivision(matrix=total, linear=total_lin, faces=f, n_coarse=n)


@functools.lru_cache(maxsize=4)
def _model_subdivision(sfm_dir: str, levels: int) -> Subdivision:
    model = load_sfm(sfm_dir)
    return loop_subdivision(model.triangles, model.n_vertices, levels)


def model_subdivision(model: SurreyModel, levels: int = 1) -> Subdivision:
    """The model's Loop subdivision (built once per process and level count)."""
    return _model_subdivision(str(model.sfm_dir), levels)


# ------------------------------------------------------------------------------------------
# Pose and projection
# ------------------------------------------------------------------------------------------


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """``(3, 3)`` rotation of model space (X right, Y up, Z out): ``R = Rz(roll) Ry(yaw) Rx(pitch)``.

    Positive yaw turns the face toward image right (its nose moves to larger ``u``), positive
    pitch tilts it up (nose moves up the image), positive roll turns it counter-clockwise on
    screen (as seen by the viewer).
    """
    y, p, r = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def project_orthographic(vertices: np.ndarray, rotation: np.ndarray, scale: float, centre: tuple[float, float]) -> np.ndarray:
    """Scaled-orthographic projection of model vertices into screen space ``(u, v, z)``.

    ``(X, Y, Z) = scale * R @ p``; ``u = cx + X``, ``v = cy - Y``, ``z = Z`` (pixels, larger =
    nearer), so depth shares the unit of ``u`` and ``v``.
    """
    p = np.asarray(vertices, np.float64) @ np.asarray(rotation, np.float64).T * float(scale)
    out = np.empty_like(p)
    out[:, 0] = centre[0] + p[:, 0]
    out[:, 1] = centre[1] - p[:, 1]
    out[:, 2] = p[:, 2]
    return out
