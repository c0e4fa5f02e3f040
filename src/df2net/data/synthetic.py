"""Synthetic training faces: a random SFM shape wearing a real photo's texture, lit and detailed.

One sample (:func:`render_synthetic`):

1. a random shape (63 coefficients ~ N(0, 1) clipped at +-2.5), expression (6 blendshapes, modest
   weights), pose (yaw +-60, pitch +-25, roll +-20 degrees, or one given), scale and position in
   a square canvas sized so that df2net's crop comes out near 512 pixels (little resampling);
2. the mesh, Loop-subdivided, rasterized in the canvas: depth (canvas pixels, larger = nearer),
   per-pixel texture coordinates; the depth is lightly smoothed (the coarse mesh is faceted);
3. procedural detail (:mod:`df2net.data.detail`) displaced into the depth along the view
   (``d * n_z``), normals recomputed from the displaced depth;
4. a photo texture from the library (hue/brightness jitter), lit in linear light with random
   2nd-order SH lighting (Lambertian), a little specular sheen and cavity darkening, over a random
   background (gradients, colour blobs, blurred real-photo surroundings), then camera blur, noise
   and sometimes JPEG;
5. df2net's own detector and crop on the render (``df2net.face``), so training sees the framing
   inference sees; a pose dlib cannot find is redrawn, and after half the allowed attempts the
   appearance too (all recorded in ``params["pose_attempts"]``);
6. depth, depth without detail, mask and detail support warped into the crop; the normals are
   recomputed there from the crop depth, so depth and normals agree exactly.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from df2net import config
from df2net.data.detail import DETAIL_RESOLUTION, random_detail_map
from df2net.data.face_model import FaceModel
from df2net.data.maps import sample_bilinear, warp_depth_to_crop, warp_to_crop
from df2net.data.marks import MarksConfig, random_marks
from df2net.data.sample import Sample
from df2net.data.surface import pixel_regions, smooth_by_region
from df2net.data.sfm import DEPTH_OFFSET_MM, project_orthographic, rotation_matrix
from df2net.data.textures import TextureLibrary, linear_to_srgb, mm_per_texel, srgb_to_linear

__all__ = ["SyntheticConfig", "Sample", "render_synthetic", "SampleFailed", "config_dict", "match_face", "MAX_LANDMARK_ERROR"]

#: A detection is the rendered face when its landmarks lie this close to the true ones (mean
#: distance over the model's landmarks, in face box sides).
MAX_LANDMARK_ERROR = 0.12


class SampleFailed(RuntimeError):
    """No pose of this sample gave a face df2net's detector finds.

    ``attempts`` holds every try, as ``params["pose_attempts"]`` of a sample would.
    """

    def __init__(self, message: str, attempts: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.attempts = list(attempts or [])


@dataclass(frozen=True)
class SyntheticConfig:
    """Ranges of the random synthetic faces (saved in every sample's params)."""

    canvas: int = 640
    crop_fraction: tuple[float, float] = (0.72, 0.9)  # crop side / canvas side (targeted)
    centre_jitter: float = 0.02  # of the canvas side
    yaw_deg: float = 60.0
    pitch_deg: float = 25.0
    roll_deg: float = 20.0
    shape_clip: float = 2.5
    expression_prob: float = 0.35  # per blendshape
    expression_max: float = 0.6
    subdivision_levels: int = 1
    base_smooth_crop_px: float = 1.2  # depth smoothing of the mesh (crop pixels)
    detail: bool = True
    detail_resolution: int = DETAIL_RESOLUTION
    detail_gain: float = 1.0  # scales every wrinkle and pore depth
    # Share of faces whose skin texture is low-passed (Gaussian of ``plain_skin_sigma_mm``): the
    # photo textures carry their owners' wrinkles as shading with no relief under it, so on
    # these faces every fine shading cue comes from the procedural relief.
    plain_skin_prob: float = 0.0
    plain_skin_sigma_mm: float = 2.0
    # Folds of older faces up to this many times deeper (see detail.random_detail_map).
    fold_gain: float = 1.0
    # Share of faces lit by a strong light from the side or top (60-88 degrees off the view,
    # little ambient): the light that tells a groove from a dark mark.
    strong_light_prob: float = 0.0
    # Albedo-only marks (None: none). Faces that wear them also get the identical render without.
    marks: MarksConfig | None = None
    marks_resolution: int = DETAIL_RESOLUTION
    max_pose_tries: int = 8
    crop_size: int = config.CROP_SIZE


def _r(x: float, n: int = 5) -> float:
    return round(float(x), n)


# ------------------------------------------------------------------------------------------
# Random ingredients
# ------------------------------------------------------------------------------------------


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    """Float ``(h, w, 3)`` in [0, 1] resized to ``(size, size, 3)`` (bicubic, via Pillow)."""
    chans = [Image.fromarray(np.asarray(arr[..., c], np.float32), mode="F").resize((size, size), Image.Resampling.BICUBIC) for c in range(arr.shape[2])]
    return np.stack([np.asarray(c, np.float64) for c in chans], -1)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A background colour: mostly muted (real backdrops), sometimes saturated."""
    grey = rng.uniform(0.05, 0.95)
    hue = rng.uniform(0.0, 1.0, 3)
    sat = rng.uniform(0.0, 0.6) ** 1.5
    return np.clip(grey + sat * (hue - hue.mean()) * 2.0, 0.0, 1.0)


def _random_background(rng: np.random.Generator, size: int, library: TextureLibrary, keys: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """``(size, size, 3)`` float sRGB background and its recipe (built at 1/4 size, upscaled)."""
    lo = max(size // 4, 8)
    yy, xx = np.mgrid[0:lo, 0:lo] / float(lo)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    ang = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) * rng.uniform(0.5, 1.5), 0, 1)
    bg = c0 * (1 - t[..., None]) + c1 * t[..., None]
    n_blobs = int(rng.integers(0, 7))
    for _ in range(n_blobs):
        cx, cy = rng.uniform(-0.1, 1.1, 2)
        rad = rng.uniform(0.05, 0.4)
        a = rng.uniform(0.3, 0.9) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rad**2))
        bg = bg * (1 - a[..., None]) + _random_colour(rng) * a[..., None]
    amp = rng.uniform(0.0, 0.06)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, (lo, lo, 3)), (rng.uniform(1.0, 4.0),) * 2 + (0,))
    noise /= max(float(noise.std()), 1e-9)
    bg = bg + amp * noise
    recipe: dict[str, Any] = {"gradient": [c0.round(3).tolist(), c1.round(3).tolist()], "blobs": n_blobs, "noise": _r(amp, 3)}
    bg = _resize(bg, size)
    if keys and rng.uniform() < 0.6:
        key = keys[int(rng.integers(len(keys)))]
        src = library.background(key)
        if src is not None and min(src.shape[:2]) >= 16:
            sh, sw = src.shape[:2]
            side = int(rng.uniform(0.35, 1.0) * min(sh, sw))
            y0 = int(rng.integers(0, sh - side + 1))
            x0 = int(rng.integers(0, sw - side + 1))
            patch = Image.fromarray(src[y0 : y0 + side, x0 : x0 + side])
            blur = rng.uniform(0.0, 2.0)
            patch = patch.resize((size, size), Image.Resampling.BICUBIC)
            p = np.asarray(patch, np.float64) / 255.0
            if blur > 0.3:
                p = np.asarray(Image.fromarray(np.asarray(patch)).filter(_gaussian(blur * size / side)), np.float64) / 255.0
            if rng.uniform() < 0.5:
                p = p[:, ::-1]
            alpha = rng.uniform(0.5, 1.0)
            bg = bg * (1 - alpha) + p * alpha
            recipe["photo"] = {"key": key, "box": [x0, y0, side], "alpha": _r(alpha, 3), "blur": _r(blur, 3)}
    return np.clip(bg, 0.0, 1.0), recipe


def _gaussian(radius: float) -> Any:
    from PIL import ImageFilter

    return ImageFilter.GaussianBlur(radius)


def _jitter_texture(rng: np.random.Generator, albedo_u8: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Linear-light albedo with a slight random hue, saturation and brightness change."""
    lin = srgb_to_linear(albedo_u8.astype(np.float32) / 255.0)
    gain = rng.uniform(0.8, 1.2)
    tint = np.clip(rng.normal(1.0, 0.04, 3), 0.88, 1.12)
    sat = rng.uniform(0.85, 1.15)
    lum = (lin @ np.array([0.2126, 0.7152, 0.0722], np.float32))[..., None]
    lin = lum + (lin - lum) * sat
    lin = np.clip(lin * gain * tint, 0.0, 1.0).astype(np.float32)
    return lin, {"gain": _r(gain, 4), "tint": tint.round(4).tolist(), "saturation": _r(sat, 4)}


def _predicted_box(points_mm: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """Guess dlib's box from the projected SFM landmarks (image-oriented mm): centre and side.

    Calibrated on renders (16 samples): dlib's box side is about 1.065 times the landmarks'
    largest extent (spread 0.87-1.1), and its centre 0.14 box sides above theirs.
    """
    lo, hi = points_mm.min(0), points_mm.max(0)
    side = 1.065 * float(max(hi - lo)) * scale
    centre = 0.5 * (lo + hi) * scale - np.array([0.0, 0.143 * side])
    return centre, side


def _plain_skin(albedo_lin: np.ndarray, sigma_texels: float) -> np.ndarray:
    """The albedo texture low-passed (Gaussian of ``sigma_texels``), its fine shading gone."""
    return np.stack([ndimage.gaussian_filter(albedo_lin[..., c], sigma_texels) for c in range(3)], axis=-1).astype(np.float32)


def _draw_appearance(
    rng: np.random.Generator,
    library: TextureLibrary,
    keys: list[str],
    canvas: int,
    cfg: SyntheticConfig,
    model: FaceModel,
) -> dict[str, Any]:
    """Texture (with jitter), SH lighting, sheen, exposure, background and camera effects.

    Last, the world's own (``model.draw_appearance``: the ICT world's iris and mouth-interior light).
    """
    from df2net.shading import random_sh_lighting

    key = keys[int(rng.integers(len(keys)))]
    albedo_lin, tex_jitter = _jitter_texture(rng, library.albedo(key))
    # Drawn only when asked for, so that the default config keeps older datasets' random streams.
    if cfg.plain_skin_prob > 0 and rng.uniform() < cfg.plain_skin_prob:
        sigma = cfg.plain_skin_sigma_mm / float(np.median(mm_per_texel(model.atlas, albedo_lin.shape[0])))
        albedo_lin = _plain_skin(albedo_lin, sigma)
        tex_jitter = {**tex_jitter, "plain_skin_sigma_texels": _r(sigma, 3)}
    if cfg.strong_light_prob > 0 and rng.uniform() < cfg.strong_light_prob:
        light = random_sh_lighting(rng, colour=True, ambient=(0.08, 0.25), strength=(0.9, 1.5), min_angle_deg=60.0, max_angle_deg=88.0)
    else:
        light = random_sh_lighting(rng, colour=True, ambient=(0.2, 0.6), strength=(0.3, 1.1), max_angle_deg=70.0)
    light = np.asarray(light, np.float64)
    look = {
        "key": key,
        "albedo_lin": albedo_lin,
        "tex_jitter": tex_jitter,
        "light": light,
        "spec_k": rng.uniform(0.0, 0.12),
        "spec_p": rng.uniform(8.0, 40.0),
        "cavity_k": rng.uniform(0.1, 0.6),
        "mouth_colour": rng.uniform(0.01, 0.05) * np.array([1.0, 0.55, 0.5]),
        "exposure": rng.uniform(0.85, 1.35),
    }
    look["background"], look["bg_recipe"] = _random_background(rng, canvas, library, keys)
    look["cam_blur"] = rng.uniform(0.0, 0.9)
    look["cam_noise"] = rng.uniform(0.002, 0.015)
    look["jpeg_q"] = int(rng.integers(55, 96)) if rng.uniform() < 0.3 else None
    look["marks"] = random_marks(rng, model.atlas, cfg.marks_resolution, cfg.marks) if cfg.marks is not None else None
    look.update(model.draw_appearance(rng))  # drawn last, so that the Surrey world keeps its random streams
    return look


def _draw_face(rng: np.random.Generator, model: FaceModel, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, float]]:
    """Identity and expression: ``(shape, expression, expression as named, emotion weights for the relief)``.

    The expression is the world's own (``model.draw_expression``): the Surrey world draws each of
    its six blendshapes on or off; the ICT world draws mixes as people make them
    (:func:`df2net.data.ict.random_expression`).
    """
    shape = np.clip(rng.normal(0.0, 1.0, model.n_shape), -cfg.shape_clip, cfg.shape_clip)
    expr, named, emotions = model.draw_expression(rng, cfg)
    return shape, expr, named, emotions


def _finish_image(
    face_lin: np.ndarray, m: np.ndarray, holes: np.ndarray, hole_lin: np.ndarray, look: dict[str, Any], noise: np.ndarray
) -> np.ndarray:
    """The face in linear light over the background, with camera blur, ``noise`` and JPEG: uint8 sRGB."""
    img = look["background"].copy()
    img[m] = linear_to_srgb(face_lin)
    if holes.any():
        img[holes] = linear_to_srgb(hole_lin)
    if look["cam_blur"] > 0.05:
        img = np.stack([ndimage.gaussian_filter(img[..., c], look["cam_blur"]) for c in range(3)], -1)
    img_u8 = np.clip(np.rint((img + noise) * 255.0), 0, 255).astype(np.uint8)
    if look["jpeg_q"] is not None:
        buf = io.BytesIO()
        Image.fromarray(img_u8).save(buf, format="JPEG", quality=look["jpeg_q"])
        img_u8 = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return img_u8


def match_face(dets: Any, landmarks: np.ndarray, ibug_index: np.ndarray) -> tuple[Any, float]:
    """The detection nearest the true face and its landmark error (``(None, inf)`` if none).

    Args:
        dets: :class:`df2net.face.FaceDetection` objects.
        landmarks: ``(L, 2)`` true landmarks in the image (pixels).
        ibug_index: ``(L,)`` their 0-based iBUG numbers (``model.landmark_array()[0]``).

    Returns:
        ``(detection, error)``: error is the mean landmark distance over the box side.
    """
    best, best_err = None, np.inf
    for det in dets:
        err = float(np.mean(np.linalg.norm(det.landmarks[ibug_index] - landmarks, axis=1)) / det.side)
        if err < best_err:
            best, best_err = det, err
    return best, best_err


def _detail_support(depth: np.ndarray, base: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return valid & (depth != base)


def _region_albedo(model: FaceModel, regions: np.ndarray, points: np.ndarray, look: dict[str, Any]) -> np.ndarray:
    """Linear albedo ``(P, 3)`` of the non-skin pixels (mouth interior, teeth, eyes)."""
    from df2net.data.ict import REGION_ALBEDO, Region

    out = np.zeros((len(regions), 3))
    for code, colour in REGION_ALBEDO.items():
        out[regions == code] = colour
    eye = regions == Region.EYEBALL
    if eye.any():
        out[eye] = model.eyeball_albedo(points[eye], look["iris"])
    return out


# ------------------------------------------------------------------------------------------
# The sample
# ------------------------------------------------------------------------------------------


def render_synthetic(
    rng: np.random.Generator,
    model: FaceModel,
    library: TextureLibrary,
    keys: list[str],
    cfg: SyntheticConfig = SyntheticConfig(),
    detector: Any = None,
    *,
    pose_deg: tuple[float, float, float] | None = None,
    on_render: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> Sample:
    """Draw and render one synthetic face (see the module docstring).

    Args:
        rng: the sample's own generator (same generator state -> identical sample).
        model: the face world (:mod:`df2net.data.face_model`).
        library: texture library; ``keys`` chooses among its entries (sorted, fixed order).
        cfg: ranges.
        detector: a :class:`df2net.face.FaceDetector` (default: the process-wide one).
        pose_deg: ``(yaw, pitch, roll)`` in degrees for every attempt, instead of a random pose
            narrowed on retries (the random pose is still drawn and discarded, so everything
            else is what the same ``rng`` gives with a random pose).
        on_render: called for every attempt, before detection, with the canvas image
            (``(canvas, canvas, 3)`` uint8) and the true landmarks projected into it
            (``(L, 2)`` pixels, in the order of ``model.landmark_array()``).

    Raises:
        SampleFailed: no pose out of ``cfg.max_pose_tries`` was detected.
    """
    from df2net.face import crop_face, default_detector
    from df2net.data.ict import Region
    from df2net.geometry import depth_to_normals
    from df2net.render import rasterize
    from df2net.shading import shade

    if not keys:
        raise ValueError("the texture library is empty: give photos to take textures from")
    detector = detector if detector is not None else default_detector()
    size = cfg.crop_size
    canvas = cfg.canvas

    # Identity, expression and detail: drawn once. Appearance (texture, light, background,
    # camera): drawn once, and again if half the pose attempts were not detected.
    shape, expr, expr_named, emotions = _draw_face(rng, model, cfg)
    vertices = model.vertices(shape, expr)
    detail = random_detail_map(rng, model.atlas, cfg.detail_resolution, expression=emotions, fold_gain=cfg.fold_gain) if cfg.detail else None
    look = _draw_appearance(rng, library, keys, canvas, cfg, model)

    sub = model.subdivision(cfg.subdivision_levels)
    uv_fine = sub.apply_linear(model.uv)
    eye_dir_fine = sub.apply_linear(model.eyeball_dir) if model.eyeball_dir is not None else None
    lm_idx, lm_vert = model.landmark_array()

    attempts: list[dict[str, Any]] = []
    for attempt in range(cfg.max_pose_tries):
        if attempt == cfg.max_pose_tries // 2 and attempt > 0:
            look = _draw_appearance(rng, library, keys, canvas, cfg, model)
            attempts.append({"result": "appearance redrawn"})
        light, exposure, albedo_lin = look["light"], look["exposure"], look["albedo_lin"]
        rt = albedo_lin.shape[0]
        # Later attempts narrow the pose toward frontal: dlib's frontal detector misses about
        # half the faces turned beyond 35 degrees (the render of such a face is then wasted).
        narrow = 0.75**attempt
        yaw = rng.uniform(-cfg.yaw_deg, cfg.yaw_deg) * narrow
        pitch = rng.uniform(-cfg.pitch_deg, cfg.pitch_deg) * narrow
        roll = rng.uniform(-cfg.roll_deg, cfg.roll_deg) * narrow
        if pose_deg is not None:
            yaw, pitch, roll = (float(a) for a in pose_deg)
        rot = rotation_matrix(yaw, pitch, roll)
        crop_side = rng.uniform(*cfg.crop_fraction) * canvas
        jitter = rng.uniform(-cfg.centre_jitter, cfg.centre_jitter, 2) * canvas
        pose = {"yaw": _r(yaw, 3), "pitch": _r(pitch, 3), "roll": _r(roll, 3)}

        pts = vertices[lm_vert] @ rot.T
        pts_img = np.stack([pts[:, 0], -pts[:, 1]], 1)  # mm, x right, y down
        centre_mm, side_mm = _predicted_box(pts_img, 1.0)
        scale = crop_side / (config.CropConfig().scale * side_mm)  # canvas px per mm
        box_centre = np.array([canvas / 2.0, canvas / 2.0]) + jitter + np.array([0.0, config.CropConfig().shift_up * side_mm * scale])
        origin = box_centre - centre_mm * scale  # where the model origin lands
        screen = project_orthographic(vertices, rot, scale, (origin[0], origin[1]))
        screen[:, 2] += DEPTH_OFFSET_MM * scale  # positive depth on the surface
        fine = sub.apply(screen)
        ras = rasterize(fine, sub.faces, canvas, canvas)
        m = ras.mask
        if m.sum() < 1000:
            attempts.append({**pose, "result": "too small"})
            continue

        smooth_sigma = cfg.base_smooth_crop_px * crop_side / size
        regions = pixel_regions(model, ras.face_index, m)
        skin_px = regions == Region.SKIN
        base = smooth_by_region(ras.depth, m, skin_px, smooth_sigma)
        uvp = ras.interpolate(uv_fine)[m]  # (P, 2)
        depth_full = base.copy()
        disp_px = np.zeros((canvas, canvas), np.float32)
        if detail is not None:
            rd = detail.displacement.shape[0]
            d_mm = sample_bilinear(detail.displacement, uvp[:, 0] * rd - 0.5, uvp[:, 1] * rd - 0.5)
            # Bilinear lookup leaks tiny values next to the support; keep it exact.
            nz = sample_bilinear((detail.displacement != 0).astype(np.float32), uvp[:, 0] * rd - 0.5, uvp[:, 1] * rd - 0.5) > 0
            n_base = depth_to_normals(base, m)
            disp_px[m] = np.where(nz & skin_px, cfg.detail_gain * d_mm * scale * n_base[m][:, 2], 0.0)
            depth_full[m] = base[m] + disp_px[m]
        normals = depth_to_normals(depth_full, m)

        # Shading in linear light.
        nm = normals[m]
        irr = np.asarray(shade(nm, light.astype(np.float32)), np.float64)  # (P, 3)
        irr = np.maximum(irr, 0.02)
        lin_band = light[1:4].mean(1)  # SH order: y, z, x
        ldir = np.array([lin_band[2], lin_band[0], lin_band[1]])
        ldir = ldir / max(np.linalg.norm(ldir), 1e-9)
        half = ldir + np.array([0.0, 0.0, 1.0])
        half /= max(np.linalg.norm(half), 1e-9)
        spec = look["spec_k"] * np.maximum(nm @ half, 0.0) ** look["spec_p"]
        # Wrinkle valleys catch less light than Lambert says (occlusion): darken by their depth.
        cavity = np.exp(-look["cavity_k"] * np.maximum(-disp_px[m], 0.0) * size / crop_side)
        alb = sample_bilinear(albedo_lin, uvp[:, 0] * rt - 0.5, uvp[:, 1] * rt - 0.5)
        if not skin_px.all():  # the mouth interior and the eyes: their own colours, less light
            inside = ~skin_px
            alb[inside] = _region_albedo(model, regions[inside], ras.interpolate(eye_dir_fine)[m][inside], look)
            dim = np.where(regions[inside] == Region.EYEBALL, 1.0, look["interior_light"])  # eyeballs are lit as skin
            irr[inside] *= dim[:, None]
            spec[inside] *= dim
        spec_term = spec[:, None] * light[0].clip(0) / light[0].max()
        face_lin = exposure * (alb * irr * cavity[:, None] + spec_term)
        # Holes inside the silhouette (the open mouth): a dark mouth cavity, not background.
        holes = ndimage.binary_fill_holes(m) & ~m
        hole_lin = exposure * look["mouth_colour"] * irr.mean(0)
        noise = rng.normal(0.0, look["cam_noise"], look["background"].shape)
        marks = look["marks"]
        marks_px = None
        if marks is not None and marks.marked.any():
            rk = marks.factor.shape[0]
            mu, mv = uvp[:, 0] * rk - 0.5, uvp[:, 1] * rk - 0.5
            factor = np.where(skin_px[:, None], sample_bilinear(marks.factor, mu, mv), 1.0)
            marks_px = np.zeros((canvas, canvas), np.float32)
            marks_px[m] = sample_bilinear(marks.marked.astype(np.float32), mu, mv) * skin_px
            marked_lin = exposure * (alb * factor * irr * cavity[:, None] + spec_term)
            img_u8 = _finish_image(marked_lin, m, holes, hole_lin, look, noise)
            img_unmarked = _finish_image(face_lin, m, holes, hole_lin, look, noise)
        else:
            if marks is not None:  # mottle only: no discrete marks, no second render
                mottle = sample_bilinear(marks.factor, uvp[:, 0] * marks.factor.shape[0] - 0.5, uvp[:, 1] * marks.factor.shape[0] - 0.5)
                face_lin = exposure * (alb * np.where(skin_px[:, None], mottle, 1.0) * irr * cavity[:, None] + spec_term)
            img_u8 = _finish_image(face_lin, m, holes, hole_lin, look, noise)
            img_unmarked = None

        # Detect and crop as inference does; the face must be the one we drew.
        proj_lm = screen[lm_vert, :2]
        if on_render is not None:
            on_render(img_u8, proj_lm)
        best, best_err = match_face(detector.detect(img_u8), proj_lm, lm_idx)
        if best is None or best_err > MAX_LANDMARK_ERROR:
            attempts.append({**pose, "result": "no face" if best is None else f"landmarks off ({best_err:.3f})"})
            continue
        fc = crop_face(img_u8, best)
        depth_c, valid = warp_depth_to_crop(depth_full, m, fc.crop_box, size)
        base_c, _ = warp_depth_to_crop(base, m, fc.crop_box, size)
        normals_c = depth_to_normals(depth_c, valid)
        detail_mask = _detail_support(depth_c, base_c, valid) if detail is not None else None
        mask = fc.mask & valid
        marks_mask = image_unmarked = None
        if img_unmarked is not None and marks_px is not None:
            image_unmarked = crop_face(img_unmarked, best).image
            marks_c, _ = warp_to_crop(marks_px, fc.crop_box, size)
            marks_mask = (marks_c > 0.5) & valid  # on the whole rendered surface, not only the face mask
        attempts.append({**pose, "result": "ok"})
        px_per_mm = scale * size / fc.crop_box[2]
        params = {
            "kind": "synthetic",
            "face_model": model.name,
            "shape_coeffs": [_r(c, 4) for c in shape],
            "expression": expr_named,
            "pose_deg": pose,
            "pose_attempts": attempts,
            "rotation": np.round(rot, 6).tolist(),
            "canvas": {"size": canvas, "scale_px_per_mm": _r(scale, 6), "origin": [_r(o, 3) for o in origin], "depth_offset_mm": DEPTH_OFFSET_MM},
            "px_per_mm": _r(px_per_mm, 6),
            "texture": {"key": look["key"], **look["tex_jitter"]},
            "lighting": {
                "sh_rgb": np.round(light, 5).tolist(),
                "specular": _r(look["spec_k"], 4),
                "shininess": _r(look["spec_p"], 3),
                "cavity": _r(look["cavity_k"], 4),
                "exposure": _r(exposure, 4),
            },
            "background": look["bg_recipe"],
            "camera": {"blur": _r(look["cam_blur"], 3), "noise": _r(look["cam_noise"], 4), "jpeg_quality": look["jpeg_q"]},
            "detection": {"box": [_r(b, 2) for b in best.box], "score": _r(best.score, 4), "landmark_error": _r(best_err, 4)},
            "crop_box": [_r(b, 4) for b in fc.crop_box],
            "detail": detail.params() if detail is not None else None,
            "marks": look["marks"].params() if look["marks"] is not None else None,
            "depth_smoothing_crop_px": cfg.base_smooth_crop_px,
            "subdivision_levels": cfg.subdivision_levels,
            "config": config_dict(cfg),
        }
        return Sample(
            image=fc.image,
            mask=mask,
            depth=depth_c,
            depth_base=base_c,
            normals=normals_c,
            detail_mask=detail_mask,
            landmarks=fc.landmarks.astype(np.float32),
            params=params,
            marks_mask=marks_mask,
            image_unmarked=image_unmarked,
        )
    raise SampleFailed(f"no detectable pose in {cfg.max_pose_tries} tries: {attempts}", attempts)


def config_dict(cfg: SyntheticConfig) -> dict[str, Any]:
    """The config as JSON-ready data (nested configs as dicts, tuples as lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return list(v) if isinstance(v, tuple) else v

    return plain(asdict(cfg))

