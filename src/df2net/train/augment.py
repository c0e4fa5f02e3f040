"""Training augmentations, as functions of tensors and a numpy random generator.

A sample is a dict of ``(C, H, W)`` float tensors on one square grid (see
:func:`df2net.train.datasets.FaceFolder.load`):

- ``image`` ``(3, H, W)`` RGB in [0, 1] (unmasked);
- ``face_mask``, ``valid``, ``detail_mask`` ``(1, H, W)`` in {0, 1} (``valid``: where the depth
  files hold a surface);
- optionally ``region`` ``(1, H, W)`` in {0, 1}: the mouth and eyes
  (:func:`df2net.face_regions.expression_regions`), moved like the masks;
- ``depth``, ``depth_base`` ``(1, H, W)`` depth in crop pixels (docs/conventions.md), 0 where not
  valid;
- ``normals`` ``(3, H, W)`` unit normals ``(X right, Y up, Z toward the viewer)``.

Geometric augmentations (:func:`hflip`, :func:`warp_affine`) move every field together and keep
them consistent: a flip negates the normals' X, a rotation of the picture rotates the normals'
(X, Y), a magnification by ``s`` multiplies depth by ``s`` (depth is in pixels of the grid).
Photometric augmentations (:func:`photometric`) change only a copy of the image that becomes the
network input.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from df2net.train.config import AugmentConfig

Sample = dict[str, torch.Tensor]

#: Fields holding depth (interpolated only over valid pixels, scaled by magnification).
DEPTH_FIELDS = ("depth", "depth_base")
#: Binary fields (re-thresholded at 0.5 after resampling).
MASK_FIELDS = ("face_mask", "valid", "detail_mask", "marks_mask", "region")
#: Per-sample flags of shape ``(1, 1, 1)``, not maps: geometry leaves them as they are.
FLAG_FIELDS = ("has_twin",)

_LUMA = torch.tensor([0.2126, 0.7152, 0.0722])


# --------------------------------------------------------------------------------- geometry


def hflip(sample: Sample) -> Sample:
    """Mirror every field left-right; the normals' X component changes sign."""
    out = {k: v if k in FLAG_FIELDS else torch.flip(v, dims=(-1,)) for k, v in sample.items()}
    if "normals" in out:
        n = out["normals"].clone()
        n[0] = -n[0]
        out["normals"] = n
    return out


def affine_theta(scale: float, shift: tuple[float, float], angle: float) -> torch.Tensor:
    """The ``(2, 3)`` :func:`torch.nn.functional.affine_grid` matrix of a similarity warp.

    The picture is magnified by ``scale`` about its centre, turned by ``angle`` radians
    (clockwise as displayed, i.e. counter-clockwise in the image's ``(u, v-down)`` frame), then
    moved by ``shift`` (fractions of the side, ``(right, down)``).
    """
    c, s = math.cos(angle), math.sin(angle)
    # Output point p_out = scale * R(angle) p_in + t, with t in normalised units (side = 2).
    # affine_grid wants p_in = A p_out + b.
    a = torch.tensor([[c, s], [-s, c]], dtype=torch.float64) / scale  # R(-angle) / scale
    t = torch.tensor([2.0 * shift[0], 2.0 * shift[1]], dtype=torch.float64)
    b = -(a @ t)
    return torch.cat([a, b[:, None]], dim=1).float()


def resample_fields(sample: Sample, resample) -> Sample:
    """Resample every field with ``resample((1, C, H, W)) -> (1, C, h, w)`` in one call.

    Depth is weighted by ``valid`` (so empty pixels do not pull it toward 0), masks are
    thresholded at 0.5 and normals renormalised; depth is 0 where the result is not valid.
    """
    flags = {k: v for k, v in sample.items() if k in FLAG_FIELDS}
    sample = {k: v for k, v in sample.items() if k not in FLAG_FIELDS}
    keys = list(sample)
    valid = sample.get("valid")
    parts = [sample[k] * valid if (k in DEPTH_FIELDS and valid is not None) else sample[k] for k in keys]
    sizes = [p.shape[0] for p in parts]
    stacked = resample(torch.cat(parts, dim=0)[None])[0]
    chunks = dict(zip(keys, torch.split(stacked, sizes, dim=0)))
    out: Sample = {}
    weight = chunks.get("valid")
    for key in keys:
        value = chunks[key]
        if key in MASK_FIELDS:
            out[key] = (value >= 0.5).to(value.dtype)
        elif key == "normals":
            norm = torch.linalg.vector_norm(value, dim=0, keepdim=True)
            out[key] = value / norm.clamp_min(1e-6)
        else:
            out[key] = value
    if weight is not None:
        for key in DEPTH_FIELDS:
            if key in out:
                out[key] = out[key] / weight.clamp_min(1e-6) * out["valid"]
    return {**out, **flags}


def warp_affine(sample: Sample, scale: float, shift: tuple[float, float], angle: float) -> Sample:
    """Apply one similarity warp (see :func:`affine_theta`) to every field of a sample.

    Depth is interpolated only from valid pixels and multiplied by ``scale``; the normals are
    resampled, turned by the same rotation in the ``(X, Y-up)`` frame and renormalised; masks are
    thresholded at 0.5. Pixels brought in from outside the picture are empty (0).
    """
    ref = next(v for k, v in sample.items() if k not in FLAG_FIELDS)
    h, w = ref.shape[-2:]
    theta = affine_theta(scale, shift, angle)[None]
    grid = F.affine_grid(theta, [1, 1, h, w], align_corners=False)
    out = resample_fields(
        sample, lambda x: F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    )
    for key in DEPTH_FIELDS:
        if key in out:
            out[key] = out[key] * scale
    if "normals" in out:
        # The picture turns clockwise by `angle` as displayed = by -angle in the Y-up frame.
        n = out["normals"]
        c, s = math.cos(-angle), math.sin(-angle)
        out["normals"] = torch.stack([c * n[0] - s * n[1], s * n[0] + c * n[1], n[2]])
    return out


def random_geometry(sample: Sample, rng: np.random.Generator, cfg: AugmentConfig) -> Sample:
    """Random flip and similarity jitter (scale ±``cfg.scale``, shift ±``cfg.shift``, ±``cfg.rotate_deg``)."""
    if rng.random() < cfg.flip:
        sample = hflip(sample)
    scale = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    shift = (rng.uniform(-cfg.shift, cfg.shift), rng.uniform(-cfg.shift, cfg.shift))
    angle = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    if cfg.scale or cfg.shift or cfg.rotate_deg:
        sample = warp_affine(sample, scale, shift, angle)
    return sample


# ----------------------------------------------------------------------------- photometry


def gaussian_kernel1d(sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A normalised 1-D Gaussian of radius ``ceil(3 sigma)``."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(C, H, W)`` or ``(B, C, H, W)`` with reflected borders."""
    if sigma <= 0:
        return img
    squeeze = img.ndim == 3
    x = img[None] if squeeze else img
    c = x.shape[1]
    k = gaussian_kernel1d(sigma, x.dtype).to(x.device)
    r = k.numel() // 2
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x[0] if squeeze else x


def _gray(img: torch.Tensor) -> torch.Tensor:
    return (img * _LUMA.to(img).view(3, 1, 1)).sum(0, keepdim=True)


def adjust_hue(img: torch.Tensor, turn: float) -> torch.Tensor:
    """Rotate the hue of ``(3, H, W)`` RGB by ``turn`` of a full circle (in YIQ space)."""
    if turn == 0:
        return img
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=img.dtype)
    c, s = math.cos(2 * math.pi * turn), math.sin(2 * math.pi * turn)
    rot = torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=img.dtype)
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    return torch.einsum("ij,jhw->ihw", m, img)


def jpeg_roundtrip(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode ``(3, H, W)`` [0, 1] RGB as JPEG at ``quality`` and decode it again."""
    arr = (img.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    back = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(back).permute(2, 0, 1).contiguous()


def occlude(img: torch.Tensor, rng: np.random.Generator, max_count: int, max_size: float) -> torch.Tensor:
    """Paint 1..``max_count`` random rectangles (flat colour or noise), each side up to ``max_size`` x side."""
    img = img.clone()
    _, h, w = img.shape
    for _ in range(int(rng.integers(1, max(1, max_count) + 1))):
        rh = max(1, int(h * rng.uniform(0.05, max_size)))
        rw = max(1, int(w * rng.uniform(0.05, max_size)))
        y0, x0 = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
        if rng.random() < 0.5:
            fill = torch.tensor(rng.random(3), dtype=img.dtype).view(3, 1, 1)
        else:
            fill = torch.from_numpy(rng.random((3, rh, rw)).astype(np.float32)).to(img.dtype)
        img[:, y0 : y0 + rh, x0 : x0 + rw] = fill
    return img


def low_resolution(img: torch.Tensor, scale: float) -> torch.Tensor:
    """``(3, H, W)`` RGB shrunk to ``scale`` of its side (area-correct) and enlarged back (bicubic).

    What inference does to a small face: a face box of ``scale * H / 2`` pixels in the photo is
    enlarged into the crop (whose side is twice the box).
    """
    h, w = img.shape[-2:]
    small = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = F.interpolate(img[None], size=small, mode="area")
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
    return x[0].clamp(0.0, 1.0)


def photometric(img: torch.Tensor, rng: np.random.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Random photometric changes of ``(3, H, W)`` RGB in [0, 1]; returns a new tensor in [0, 1].

    In order: lighting tint (per-channel gain), brightness, contrast, saturation, hue, gamma,
    Gaussian blur, occluding rectangles, Gaussian noise, JPEG re-encoding, and last (with
    ``cfg.lowres_prob``) :func:`low_resolution`, so a small face's noise and JPEG blocks are
    enlarged with it.
    """
    x = img.clone()
    x = x * torch.tensor(1.0 + rng.uniform(-cfg.tint, cfg.tint, 3), dtype=x.dtype).view(3, 1, 1)
    x = x * (1.0 + rng.uniform(-cfg.brightness, cfg.brightness))
    mean = _gray(x).mean()
    x = (x - mean) * (1.0 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    g = _gray(x)
    x = g + (x - g) * (1.0 + rng.uniform(-cfg.saturation, cfg.saturation))
    x = adjust_hue(x, rng.uniform(-cfg.hue, cfg.hue))
    x = x.clamp(0.0, 1.0) ** math.exp(rng.uniform(-cfg.gamma, cfg.gamma))
    if rng.random() < cfg.blur_prob:
        x = gaussian_blur(x, rng.uniform(*cfg.blur_sigma))
    if rng.random() < cfg.occlusion_prob:
        x = occlude(x, rng, cfg.occlusion_max, cfg.occlusion_size)
    if rng.random() < cfg.noise_prob:
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        x = x + torch.randn(x.shape, generator=gen, dtype=x.dtype) * rng.uniform(0.0, cfg.noise_std)
    x = x.clamp(0.0, 1.0)
    if rng.random() < cfg.jpeg_prob:
        x = jpeg_roundtrip(x, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    if cfg.lowres_prob > 0 and rng.random() < cfg.lowres_prob:  # drawn only when on: old runs replay
        x = low_resolution(x, rng.uniform(*cfg.lowres_scale))
    return x


def to_network_input(img: torch.Tensor, face_mask: torch.Tensor) -> torch.Tensor:
    """The network input of ``(3, H, W)`` RGB in [0, 1]: masked, quantised to 8 bits, in [-1, 1].

    Same values as inference (``df2net.reconstruct._to_network_input``: ``masked uint8 / 127.5 - 1``).
    """
    q = torch.round(img.clamp(0.0, 1.0) * 255.0) * face_mask
    return q / 127.5 - 1.0
