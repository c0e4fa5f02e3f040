"""Face textures of real photos in the SFM's texture (UV) space, made to act like albedo.

A photo's texture is pulled into UV space with ``eos.render.extract_texture`` after a Surrey fit,
or, after an ICT fit (:mod:`df2net.data.ict_fit`), by sampling the photo where each texel's point
of the fitted ICT face lands (:func:`pull_ict_texture`; the ICT mesh carries the same layout, and
its open mouth keeps teeth and cavity out of the lips' texels). Then, so that it can be lit again
on another shape (texture transfer):

1. texels the photo does not see well (self-occluded, grazing, outside the image) are filled from
   the mirror texel ``(1 - u, v)`` (the SFM layout is symmetric), else from the local skin colour;
2. the photo's shading is divided out: a 9-term SH lighting fitted to the texels with the fitted
   mesh's normals, then any remaining low-frequency luminance (a heavily blurred luminance,
   normalised to its mean);
3. non-skin texels away from the eyes, brows, lips and nostrils (hair, background at the rim)
   are replaced by the surrounding skin colour;
4. luminance detail at the scale of wrinkles (1-4 mm) is attenuated outside those features, so
   the photo's wrinkles are not baked into the albedo of a face whose geometry lacks them.

Textures are cached as PNGs (one per photo, keyed by the photo's bytes) with a blurred
background-only version of the photo for synthetic backgrounds.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from df2net.data.fitting import FaceFit
from df2net.data.sfm import SurreyModel
from df2net.data.uv import feature_mask_uv, masked_blur, mm_per_texel, uv_raster

__all__ = [
    "TEXTURE_VERSION",
    "FaceTexture",
    "TextureLibrary",
    "uv_raster",
    "feature_mask_uv",
    "extract_face_texture",
    "background_source",
    "srgb_to_linear",
    "linear_to_srgb",
]

#: Bumped whenever the texture recipe changes, so cached textures are rebuilt.
TEXTURE_VERSION = 2

#: Default texture resolution (texels per side).
TEXTURE_RESOLUTION = 512


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light (a 2.2 power curve)."""
    return np.power(np.clip(x, 0.0, 1.0), 2.2)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light to sRGB-encoded values in [0, 1] (inverse of :func:`srgb_to_linear`)."""
    return np.power(np.clip(x, 0.0, 1.0), 1.0 / 2.2)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722], rgb.dtype)


# ------------------------------------------------------------------------------------------
# Extraction
# ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class FaceTexture:
    """An albedo-like face texture in the SFM's UV space.

    Attributes:
        albedo: ``(R, R, 3)`` uint8 sRGB.
        confidence: ``(R, R)`` float32 in [0, 1], how well the photo itself showed each texel.
        coverage: ``(R, R)`` bool, texels the face layout covers.
    """

    albedo: np.ndarray
    confidence: np.ndarray
    coverage: np.ndarray


def _vertex_confidence(fit: FaceFit, model: SurreyModel) -> np.ndarray:
    """Per vertex: how frontal (camera normal z) and visible (z-buffer) it is in the photo."""
    from df2net.render import rasterize, vertex_normals

    w, h = fit.image_size
    normals = vertex_normals(fit.vertices, model.triangles) @ fit.rotation.T
    ras = rasterize(fit.screen, model.triangles, h, w)
    u, v, z = fit.screen.T
    iu, iv = np.rint(u).astype(int), np.rint(v).astype(int)
    inside = (iu >= 1) & (iu < w - 1) & (iv >= 1) & (iv < h - 1)
    zb = np.full(len(u), np.inf)
    zb[inside] = ras.depth[iv[inside], iu[inside]]
    visible = inside & (z >= zb - 3.0 * fit.scale)  # within 3 mm of the front surface
    frontal = np.clip((normals[:, 2] - 0.05) / 0.3, 0.0, 1.0)
    return (frontal * visible).astype(np.float64), normals


@functools.lru_cache(maxsize=4)
def _ict_uv_raster(model: Any, resolution: int) -> Any:
    """The ICT skin triangles the atlas covers, rasterized in texture space (once per model and resolution)."""
    from df2net.render import rasterize

    r = int(resolution)
    return rasterize(np.c_[model.uv * r - 0.5, np.zeros(model.n_vertices)], model.atlas_triangles(), r, r)


def pull_ict_texture(rgb: np.ndarray, fit: Any, model: Any, resolution: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """``(colour (R, R, 3) uint8, seen (R, R) bool, raster)``: the photo sampled at each texel's fitted ICT point."""
    from df2net.data.maps import sample_bilinear

    ras = _ict_uv_raster(model, resolution)
    uv_img = ras.interpolate(fit.screen[:, :2])  # (R, R, 2) image (u, v) of each texel
    h, w = rgb.shape[:2]
    inside = ras.mask & (uv_img[..., 0] >= 0) & (uv_img[..., 0] <= w - 1) & (uv_img[..., 1] >= 0) & (uv_img[..., 1] <= h - 1)
    out = np.zeros((*ras.mask.shape, 3), np.uint8)
    colour = sample_bilinear(rgb[..., :3].astype(np.float32), uv_img[inside][:, 0], uv_img[inside][:, 1])
    out[inside] = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return out, inside, ras


def pull_sfm_texture(rgb: np.ndarray, fit: FaceFit, model: SurreyModel, resolution: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """``(colour (R, R, 3) uint8, seen (R, R) bool, raster)``: the photo pulled into UV space by eos after a Surrey fit."""
    import eos

    rgba = np.ascontiguousarray(np.dstack([rgb[..., :3], np.full(rgb.shape[:2], 255, np.uint8)]))
    extracted = np.asarray(eos.render.extract_texture(fit.eos_mesh, fit.eos_pose, rgba, resolution))
    seen = extracted[..., 3] > 0  # eos leaves texels it could not map transparent
    return extracted[..., :3], seen, uv_raster(model, resolution)


def extract_face_texture(
    rgb: np.ndarray, fit: Any, model: Any, resolution: int = TEXTURE_RESOLUTION
) -> FaceTexture:
    """Pull a photo's face into UV space and make it albedo-like (see the module docstring).

    ``fit`` and ``model``: a Surrey :class:`FaceFit` and the SFM, or an ICT fit and the ICT model.
    """
    from df2net.shading import fit_sh_lighting, shade

    r = int(resolution)
    raw, seen, ras = model.pull_texture(rgb, fit, r)
    cover = uv_raster(model.atlas, r).mask
    conf_v, normals_v = _vertex_confidence(fit, model)
    conf = np.clip(ras.interpolate(conf_v), 0.0, 1.0) * cover * seen  # seen lies inside the raster
    conf = ndimage.minimum_filter(conf, size=3)  # keep off the visibility edge
    normals = ras.interpolate(normals_v)
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)

    lin = srgb_to_linear(raw.astype(np.float64) / 255.0)

    # 1. Divide out the photo's lighting, fitted on the well-seen texels with the fit's normals.
    model = model.atlas  # from here on, the layout's own helpers
    feat = feature_mask_uv(model, r)
    good = (conf > 0.6) & ~feat
    if good.sum() > 200:
        coeffs = fit_sh_lighting(normals[good].astype(np.float64), lin[good], reg=1e-3)
        sh = np.asarray(shade(normals.astype(np.float64), coeffs))
        mean_sh = np.mean(sh[good], axis=0)
        rel = np.clip(sh / np.maximum(mean_sh, 1e-6), 0.3, 3.0)
        lin = np.where(cover[..., None], lin / rel, lin)

    # 2. Mirror-fill what the photo did not see; the rest from the local colour.
    conf_m = conf[:, ::-1]
    lin_m = lin[:, ::-1]
    w_own = conf
    w_mir = conf_m * (1.0 - conf)
    total = w_own + w_mir
    mixed = (lin * w_own[..., None] + lin_m * w_mir[..., None]) / np.maximum(total, 1e-6)[..., None]
    seen = np.clip(total, 0.0, 1.0)
    local, _ = masked_blur(mixed, seen * cover, r / 24)
    skin_pix = (seen > 0.5) & cover & ~feat
    skin_mean = np.median(mixed[skin_pix], axis=0) if skin_pix.sum() > 50 else np.array([0.45, 0.3, 0.22])
    local = np.where(np.isfinite(local).all(-1, keepdims=True) & (local.sum(-1, keepdims=True) > 0), local, skin_mean)
    tex = mixed * seen[..., None] + local * (1.0 - seen[..., None])

    # 3. Remaining low-frequency luminance (shadows the SH could not explain, e.g. cast ones).
    lum = _luma(tex)
    lum_b, _ = masked_blur(lum, cover.astype(np.float64), r / 20)
    ratio = np.clip(np.median(lum[skin_pix]) / np.maximum(lum_b, 1e-6), 0.5, 2.0) if skin_pix.any() else 1.0
    tex = tex * (ratio[..., None] if np.ndim(ratio) else ratio)
    # Specular highlights (nose tip, forehead) are compressed toward the local level.
    mm = float(np.median(mm_per_texel(model, r)))
    lum = _luma(tex)
    base = ndimage.gaussian_filter(lum, 4.0 / mm)
    excess = np.maximum(lum / np.maximum(base, 1e-6) - 1.2, 0.0)
    tex = tex * ((1.2 + 0.3 * np.tanh(excess / 0.3)) / (1.2 + excess))[..., None]

    # 4. Non-skin texels outside the features (hair, background at the rim) -> local skin colour.
    # Judged on a 2 mm blur, so thin dark lines (wrinkles, pores) are not taken for hair.
    soft = np.stack([ndimage.gaussian_filter(tex[..., c], 2.0 / mm) for c in range(3)], -1)
    chroma = soft / np.maximum(soft.sum(-1, keepdims=True), 1e-6)
    skin_chroma = np.median(chroma[skin_pix], axis=0) if skin_pix.any() else np.array([0.45, 0.32, 0.23])
    lum = _luma(soft)
    skin_lum = np.median(lum[skin_pix]) if skin_pix.any() else 0.3
    d_chroma = np.linalg.norm(chroma - skin_chroma, axis=-1) / 0.06
    log_ratio = np.log(np.maximum(lum, 1e-4) / skin_lum)
    d_lum = np.maximum(np.abs(log_ratio) - np.log(2.0), 0.0) / np.log(1.5)
    skinlike = np.exp(-0.5 * (d_chroma**2 + d_lum**2))
    skinlike = np.where(feat, 1.0, skinlike)
    skin_local, _ = masked_blur(tex, skinlike * cover, r / 20)
    skin_local = np.where(np.isfinite(skin_local).all(-1, keepdims=True), skin_local, skin_mean)
    keep = np.clip((skinlike - 0.05) / 0.3, 0.0, 1.0)[..., None]
    tex = tex * keep + skin_local * (1.0 - keep)

    # 5. Attenuate wrinkle-scale luminance outside the features (keep skin grain and colour).
    log_l = np.log(np.maximum(_luma(tex), 1e-4))
    band = ndimage.gaussian_filter(log_l, 0.4 / mm) - ndimage.gaussian_filter(log_l, 4.0 / mm)
    protect = ndimage.gaussian_filter(feat.astype(np.float64), 2.0 / mm)
    atten = 0.65 * (1.0 - protect)
    tex = tex * np.exp(-atten * band)[..., None]

    tex = np.where(cover[..., None], tex, skin_mean)
    albedo = np.clip(np.rint(linear_to_srgb(tex) * 255.0), 0, 255).astype(np.uint8)
    return FaceTexture(albedo=albedo, confidence=conf.astype(np.float32), coverage=cover)


def background_source(rgb: np.ndarray, fit: FaceFit, model: SurreyModel, max_side: int = 256) -> np.ndarray:
    """The photo with the face painted out (from its surroundings), downscaled; for backgrounds."""
    from df2net.render import rasterize

    h, w = rgb.shape[:2]
    ras = rasterize(fit.screen, model.triangles, h, w)
    face = ndimage.binary_dilation(ras.mask, iterations=max(2, int(0.05 * max(h, w))))
    img = rgb[..., :3].astype(np.float64)
    fill, _ = masked_blur(img, (~face).astype(np.float64), max(h, w) / 12)
    fill = np.where(np.isfinite(fill), fill, img.mean((0, 1)))
    out = np.where(face[..., None], fill, img)
    s = min(1.0, max_side / max(h, w))
    pil = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))
    if s < 1.0:
        pil = pil.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    return np.asarray(pil)


# ------------------------------------------------------------------------------------------
# Library (cache on disk)
# ------------------------------------------------------------------------------------------


def file_key(path: str | Path) -> str:
    """A short content hash of a file (so a renamed photo keeps its cached texture)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


class TextureLibrary:
    """Albedo textures (and background sources) cached in a folder.

    Layout: ``<dir>/<key>.png`` (albedo), ``<dir>/<key>.bg.png`` (background source) and
    ``<dir>/<key>.json`` (where it came from). Entries are listed in sorted key order, so the
    same folder always gives the same indices.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._cache: dict[str, np.ndarray] = {}

    def key_for(self, photo: str | Path, resolution: int, face_model: str = "sfm") -> str:
        """The entry of ``photo``'s texture pulled by a ``face_model`` fit at ``resolution``."""
        fitted = "" if face_model == "sfm" else f"-{face_model}"
        return f"{Path(photo).stem}-{file_key(photo)}-r{resolution}{fitted}-v{TEXTURE_VERSION}"

    def has(self, key: str) -> bool:
        return (self.folder / f"{key}.png").is_file() and (self.folder / f"{key}.json").is_file()

    def add(self, key: str, texture: FaceTexture, background: np.ndarray | None, meta: dict[str, Any]) -> None:
        from df2net.io import atomic_path, write_text_atomic

        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"{key}.png") as tmp:
            Image.fromarray(texture.albedo).save(tmp)
        if background is not None:
            with atomic_path(self.folder / f"{key}.bg.png") as tmp:
                Image.fromarray(background).save(tmp)
        write_text_atomic(self.folder / f"{key}.json", json.dumps(meta, indent=1))

    def keys(self, restrict: list[str] | None = None) -> list[str]:
        """Cached entries made by the current recipe (:data:`TEXTURE_VERSION`), sorted."""
        suffix = f"-v{TEXTURE_VERSION}"
        found = sorted(
            k for k in (p.name[: -len(".json")] for p in self.folder.glob("*.json")) if k.endswith(suffix) and self.has(k)
        )
        if restrict is not None:
            wanted = set(restrict)
            found = [k for k in found if k in wanted]
        return found

    def albedo(self, key: str) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = np.asarray(Image.open(self.folder / f"{key}.png").convert("RGB"))
        return self._cache[key]

    def background(self, key: str) -> np.ndarray | None:
        p = self.folder / f"{key}.bg.png"
        ck = key + ".bg"
        if ck not in self._cache:
            if not p.is_file():
                return None
            self._cache[ck] = np.asarray(Image.open(p).convert("RGB"))
        return self._cache[ck]
