"""Training losses, as pure tensor functions.

Shapes: ``B`` batch, ``H x W`` one stage's grid. Depth maps are ``(B, 1, H, W)``, masks
``(B, 1, H, W)`` floats in {0, 1} (or weights), images ``(B, 3, H, W)`` RGB in [0, 1]. Every
per-term function returns a ``(B,)`` tensor (one value per sample) so the caller can weight
samples (e.g. real photos against synthetic renders).

Units (docs/conventions.md): targets come in **crop pixels** (``CROP_SIZE`` per crop side); the
network speaks **network units**, ``pixels at input_size = units * depth_scale + depth_offset``.
:func:`crop_pixels_to_units` and :func:`units_to_grid_pixels` convert. Depth losses compare
network units after removing each sample's mean inside the mask (depth is defined up to an
offset); normals are computed from depth in pixels *of the grid they live on*, so x, y and z
share one unit and the normals have true proportions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from df2net.config import CROP_SIZE
from df2net.geometry import depth_to_normals_torch
from df2net.shading import fit_sh_lighting, luminance, shade
from df2net.train.augment import gaussian_blur

if TYPE_CHECKING:  # pragma: no cover
    from df2net.model import ModelConfig
    from df2net.train.config import LossConfig

_EPS = 1e-6


# ------------------------------------------------------------------------------ helpers


def masked_mean(x: Tensor, weight: Tensor) -> Tensor:
    """Per-sample weighted mean of ``x (B, C, H, W)`` under ``weight (B, 1, H, W)``: ``(B,)``.

    Channels are averaged too. A sample with no weight gives 0.
    """
    w = weight.expand_as(x)
    return (x * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(_EPS)


def erode(mask: Tensor, px: int) -> Tensor:
    """Binary erosion of ``(B, 1, H, W)`` {0, 1} masks by a ``(2 px + 1)``-square; px <= 0: unchanged."""
    if px <= 0:
        return mask
    return 1.0 - F.max_pool2d(1.0 - mask, 2 * px + 1, stride=1, padding=px)


def remove_offset(depth: Tensor, mask: Tensor) -> Tensor:
    """``depth (B, 1, H, W)`` minus each sample's mean inside ``mask``."""
    return depth - masked_mean(depth, mask).view(-1, 1, 1, 1)


def _grid_xy(depth: Tensor) -> tuple[Tensor, Tensor]:
    """Column and row coordinates of ``depth (B, 1, H, W)``'s grid, each from -1 to 1:
    ``(1, 1, 1, W)`` and ``(1, 1, H, 1)``."""
    h, w = depth.shape[-2:]
    x = torch.linspace(-1.0, 1.0, w, dtype=depth.dtype, device=depth.device).view(1, 1, 1, w)
    y = torch.linspace(-1.0, 1.0, h, dtype=depth.dtype, device=depth.device).view(1, 1, h, 1)
    return x, y


def plane_fit(depth: Tensor, mask: Tensor) -> Tensor:
    """Each sample's weighted least-squares plane ``a x + b y + c`` of ``depth (B, 1, H, W)`` inside
    ``mask``: ``(B, 3)`` as ``(a, b, c)``, with ``x`` and ``y`` running from -1 to 1 across the grid
    (so ``a`` and ``b`` are the depth gained from the middle to the right and bottom edges)."""
    x, y = _grid_xy(depth)
    columns = (x.expand_as(depth), y.expand_as(depth), torch.ones_like(depth))
    basis = torch.stack(columns, dim=-1).flatten(1, 3)  # (B, N, 3)
    wt = mask.expand_as(depth).flatten(1).unsqueeze(-1)  # (B, N, 1)
    gram = (basis * wt).transpose(1, 2) @ basis  # (B, 3, 3)
    rhs = (basis * wt).transpose(1, 2) @ depth.flatten(1).unsqueeze(-1)  # (B, 3, 1)
    eye = torch.eye(3, dtype=depth.dtype, device=depth.device)
    return torch.linalg.solve(gram + 1e-6 * eye, rhs).squeeze(-1)


def remove_plane(depth: Tensor, mask: Tensor) -> Tensor:
    """``depth (B, 1, H, W)`` minus each sample's best plane inside ``mask`` (:func:`plane_fit`)."""
    a, b, c = plane_fit(depth, mask).unbind(-1)
    x, y = _grid_xy(depth)
    return depth - (a.view(-1, 1, 1, 1) * x + b.view(-1, 1, 1, 1) * y + c.view(-1, 1, 1, 1))


def crop_pixels_to_units(depth: Tensor, model_config: ModelConfig) -> Tensor:
    """Depth in crop pixels (``CROP_SIZE`` per side) to network units of ``model_config``."""
    px = depth * (model_config.input_size / CROP_SIZE)
    return (px - model_config.depth_offset) / model_config.depth_scale


def units_to_grid_pixels(units: Tensor, model_config: ModelConfig, grid: int) -> Tensor:
    """Network units to depth in pixels of a ``grid x grid`` map of the crop."""
    px = units * model_config.depth_scale + model_config.depth_offset
    return px * (grid / model_config.input_size)


def laplacian(depth: Tensor) -> Tensor:
    """5-point Laplacian of ``(B, 1, H, W)`` with replicated borders: ``(B, 1, H, W)``."""
    p = F.pad(depth, (1, 1, 1, 1), mode="replicate")
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4.0 * depth


# ------------------------------------------------------------------------------ terms


def depth_l1(pred: Tensor, target: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean ``|pred - target|`` inside ``mask`` after removing each one's mean offset there: ``(B,)``.

    Args:
        pred, target: ``(B, 1, H, W)`` depth in the same units (network units in training).
        mask: ``(B, 1, H, W)`` where the target is valid.
        weight: optional ``(B, 1, H, W)`` per-pixel weights (multiplied with ``mask``).
    """
    w = mask if weight is None else mask * weight
    diff = remove_offset(pred, mask) - remove_offset(target, mask)
    return masked_mean(diff.abs(), w)


def depth_l1_shape(pred: Tensor, target: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
    """:func:`depth_l1` after removing each one's best plane (:func:`remove_plane`) instead of its
    mean: the shape without the overall tilt, ``(B,)``."""
    w = mask if weight is None else mask * weight
    diff = remove_plane(pred, mask) - remove_plane(target, mask)
    return masked_mean(diff.abs(), w)


def plane_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``|a_pred - a_target| + |b_pred - b_target|`` of the two depths' best planes inside ``mask``
    (:func:`plane_fit`): the error of the overall tilt, in the depths' unit per half grid, ``(B,)``."""
    return (plane_fit(pred, mask)[:, :2] - plane_fit(target, mask)[:, :2]).abs().sum(-1)


def normal_loss(
    pred_px: Tensor, target_px: Tensor, mask: Tensor, erode_px: int = 2, weight: Tensor | None = None
) -> Tensor:
    """Mean ``1 - cos`` between the normals of two depth maps, inside the eroded mask: ``(B,)``.

    Args:
        pred_px, target_px: ``(B, 1, H, W)`` depth in pixels of this ``H x W`` grid.
        mask: ``(B, 1, H, W)`` where the target is valid; normals use one-sided differences at
            its edge, and the loss skips ``erode_px`` pixels along it.
        weight: optional ``(B, 1, H, W)`` per-pixel weights.
    """
    m = mask > 0.5
    n_pred = depth_to_normals_torch(pred_px, m)
    n_tgt = depth_to_normals_torch(target_px, m)
    cos = (n_pred * n_tgt).sum(1, keepdim=True)
    w = erode(mask, erode_px)
    if weight is not None:
        w = w * weight
    return masked_mean(1.0 - cos, w)


def gradient_l1(
    pred_px: Tensor, target_px: Tensor, mask: Tensor, erode_px: int = 2, weight: Tensor | None = None
) -> Tensor:
    """Mean ``|grad pred - grad target|`` (forward differences in x and y) inside the mask: ``(B,)``.

    Linear in the error, unlike ``1 - cos`` of the normals (quadratic for small angles), so fine
    detail of a fraction of a pixel still pulls; blind to offsets. A difference counts only where
    both of its pixels lie in the mask eroded by ``erode_px``.

    Args:
        pred_px, target_px: ``(B, 1, H, W)`` depth in pixels of this ``H x W`` grid.
        mask: ``(B, 1, H, W)`` where the target is valid.
        weight: optional ``(B, 1, H, W)`` per-pixel weights.
    """
    w = erode(mask, erode_px)
    if weight is not None:
        w = w * weight
    diff = pred_px - target_px
    wx = torch.minimum(w[..., :, 1:], w[..., :, :-1])
    wy = torch.minimum(w[..., 1:, :], w[..., :-1, :])
    gx = (diff[..., :, 1:] - diff[..., :, :-1]).abs()
    gy = (diff[..., 1:, :] - diff[..., :-1, :]).abs()
    num = (gx * wx).flatten(1).sum(1) + (gy * wy).flatten(1).sum(1)
    return num / (wx.flatten(1).sum(1) + wy.flatten(1).sum(1)).clamp_min(_EPS)


def laplacian_loss(depth_px: Tensor, mask: Tensor, erode_px: int = 1) -> Tensor:
    """Mean ``|Laplacian|`` of ``depth_px (B, 1, H, W)`` (grid pixels) inside the eroded mask: ``(B,)``."""
    return masked_mean(laplacian(depth_px).abs(), erode(mask, erode_px))


def smooth_albedo(intensity: Tensor, shading: Tensor, mask: Tensor, sigma_px: float) -> Tensor:
    """Albedo kept smooth: Gaussian low-pass of the intensity over that of the shading.

    ``intensity``, ``shading``, ``mask``: ``(B, 1, H, W)``; returns ``(B, 1, H, W)`` (detached
    from nothing: detach the inputs if it must not carry gradients). Both low-passes are taken
    over the mask only, so the background does not bleed in.
    """
    num = gaussian_blur(intensity * mask, sigma_px)
    den = gaussian_blur(shading * mask, sigma_px)
    floor = masked_mean(shading.abs(), mask).view(-1, 1, 1, 1) * 0.05 + _EPS
    return num / torch.maximum(den, floor)


def shading_terms(
    depth_px: Tensor, image: Tensor, mask: Tensor, sigma_px: float, reg: float = 1e-3, erode_px: int = 2
) -> dict[str, Tensor]:
    """The pieces of the shading loss (see :func:`shading_loss`), for inspection and plots.

    Returns a dict of ``luminance``, ``shading`` (unit albedo), ``albedo``, ``rendered`` (all
    ``(B, 1, H, W)``), ``weight`` (the eroded mask, ``(B, 1, H, W)``), ``light`` ``(B, 9)``.
    """
    m = mask > 0.5
    normals = depth_to_normals_torch(depth_px, m).permute(0, 2, 3, 1)  # (B, H, W, 3)
    lum = luminance(image.permute(0, 2, 3, 1))  # (B, H, W)
    w = erode(mask, erode_px)
    n_fixed = normals.detach()
    light = fit_sh_lighting(n_fixed, lum, w[:, 0], reg=reg)
    s0 = shade(n_fixed, light).unsqueeze(1)
    albedo = smooth_albedo(lum.unsqueeze(1), s0, w, sigma_px).detach()
    # Refit the light under that albedo, then shade the (differentiable) normals with it.
    light = fit_sh_lighting(n_fixed, lum, w[:, 0], albedo=albedo[:, 0], reg=reg).detach()
    s = shade(normals, light).unsqueeze(1)
    return {
        "luminance": lum.unsqueeze(1),
        "shading": s,
        "albedo": albedo,
        "rendered": albedo * s,
        "weight": w,
        "light": light,
    }


def shading_loss(
    depth_px: Tensor, image: Tensor, mask: Tensor, sigma_px: float, reg: float = 1e-3, erode_px: int = 2
) -> Tensor:
    """Self-supervised shape-from-shading loss under 9-term SH lighting: ``(B,)``.

    The photo's luminance ``I`` is explained as ``albedo * shade(n, L)``: ``n`` the normals of
    ``depth_px`` (gradients flow through them), ``L`` fitted per image by least squares on the
    detached normals, ``albedo`` a smooth map (:func:`smooth_albedo`, Gaussian of ``sigma_px``
    pixels) so that only the shading can explain fine structure. The loss is the mean
    ``|I - albedo * shade|`` inside the eroded mask, divided by the mean ``I`` there (so it does
    not depend on exposure). It is ~0 when the image was rendered from ``depth_px`` under SH light
    with a smooth albedo.

    Args:
        depth_px: ``(B, 1, H, W)`` depth in pixels of this grid.
        image: ``(B, 3, H, W)`` RGB in [0, 1].
        mask: ``(B, 1, H, W)`` face mask.
        sigma_px: albedo low-pass width in pixels.
    """
    t = shading_terms(depth_px, image, mask, sigma_px, reg, erode_px)
    scale = masked_mean(t["luminance"], t["weight"]).detach().clamp_min(1e-3)
    return masked_mean((t["luminance"] - t["rendered"]).abs(), t["weight"]) / scale


# ------------------------------------------------------------------------------ per stage


def pair_loss(
    marked_px: Tensor, plain_px: Tensor, mask: Tensor, marks: Tensor, sigma_px: float, marks_boost: float
) -> tuple[Tensor, Tensor]:
    """What albedo-only marks change in a depth: ``(whole (B,), band (B,))``.

    Args:
        marked_px, plain_px: ``(B, 1, H, W)`` the depths predicted from a render with and without
            its marks, in pixels of the grid.
        mask: ``(B, 1, H, W)`` face mask; ``marks``: where the marks are (they weigh
            ``1 + marks_boost``).
        sigma_px: the high-pass of the band term, in pixels of this grid.

    ``whole`` is the weighted L1 of the difference after removing its mean offset in the mask,
    ``band`` the weighted L1 of the difference minus its Gaussian blur (normalised inside the mask,
    as :func:`df2net.metrics.high_pass`).
    """
    diff = remove_offset(marked_px - plain_px, mask)
    weight = mask * (1.0 + marks_boost * marks)
    whole = masked_mean(diff.abs(), weight)
    blur = gaussian_blur(diff * mask, sigma_px) / gaussian_blur(mask, sigma_px).clamp_min(_EPS)
    band = masked_mean((diff - blur).abs(), weight)
    return whole, band


def band_l1(pred_px: Tensor, target_px: Tensor, mask: Tensor, sigma_px: float, weight: Tensor | None = None) -> Tensor:
    """Per-sample L1 ``(B,)`` of the depth error's high-pass (the relief band of ``evaluate``).

    The error ``pred - target`` (pixels of the grid, each sample's offset removed) minus its
    Gaussian blur of ``sigma_px`` normalised inside ``mask``, as :func:`df2net.metrics.high_pass`
    takes the band. Unlike the gradient term, which weighs every scale by its slope, this one is
    blind to the coarse error and sees only the shape at the scale of folds and of the
    curvature a high-pass leaves of a smooth surface.
    """
    err = remove_offset(pred_px - target_px, mask)
    blur = gaussian_blur(err * mask, sigma_px) / gaussian_blur(mask, sigma_px).clamp_min(_EPS)
    w = mask if weight is None else mask * weight
    return masked_mean((err - blur).abs(), w)


def region_weight(batch: dict[str, Tensor], boost: float) -> Tensor | None:
    """Per-pixel weights ``1 + boost * batch["region"]`` (mouth and eyes) ``(B, 1, H, W)``; None when ``boost`` is 0."""
    if not boost:
        return None
    if "region" not in batch:
        raise ValueError("region_boost needs the region maps in the batch (TrainingSet(..., regions=True))")
    return 1.0 + boost * batch["region"]


def stage_loss(
    stage: str,
    pred: dict[str, Tensor],
    batch: dict[str, Tensor],
    model_config: ModelConfig,
    cfg: LossConfig,
    grid: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The training loss of one stage: ``(total (), {term name: batch mean (), ...})``.

    Args:
        stage: ``"dense"``, ``"fine"`` or ``"finer"``.
        pred: network outputs in network units on the stage's grid: ``pred[stage]`` and, for
            ``"finer"``, ``pred["fine"]`` (F-Net's depth, same grid).
        batch: a collated :class:`~df2net.train.datasets.TrainingSet` batch on the same grid.
        model_config: gives the units.
        cfg: the loss weights.
        grid: side of the whole map the tensors come from, when they are patches of it (patch
            training); pixel units and the albedo width follow it. Default: their own side.

    Terms: ``depth``, ``normal`` and ``gradient`` against ``depth_base`` (dense) or ``depth``
    (fine, finer), samples weighted 1 (synthetic) or ``cfg.fits_weight`` (fits), inside
    ``batch["mask"]`` (face and valid target); for ``"finer"`` also ``detail`` (synthetic samples:
    Fr-Net's added detail against ``depth - depth_base``, same mask), ``shading`` (real photos,
    and synthetic samples times ``cfg.shading_synthetic``), ``fidelity`` and ``laplacian``, inside
    ``batch["face_mask"]``. The total is the weighted sum.

    ``plane`` (synthetic samples only, every stage) is :func:`plane_l1` of the depth against its
    target, network units; with ``cfg.fits_tilt_free`` the ``depth`` term of fits samples compares
    the depths after removing each one's best plane (:func:`depth_l1_shape`).

    With ``cfg.region_boost``, ``depth``, ``normal``, ``gradient`` and ``band`` weigh the pixels
    of ``batch["region"]`` (mouth and eyes) ``1 + cfg.region_boost`` (:func:`region_weight`).
    """
    out = pred[stage]
    grid = grid or out.shape[-1]
    mask = batch["mask"]
    synthetic = batch["synthetic"].to(out.dtype)
    sample_w = synthetic + (1.0 - synthetic) * cfg.fits_weight  # (B,)
    target = batch["depth_base"] if stage == "dense" else batch["depth"]
    pixel_w = 1.0 + cfg.detail_boost * batch["detail_mask"] if stage == "finer" and cfg.detail_boost else None
    region_w = region_weight(batch, cfg.region_boost)
    # The terms against the target depth: the detail weights (finer) times the region weights.
    target_w = pixel_w
    if region_w is not None:
        target_w = region_w if pixel_w is None else pixel_w * region_w

    terms: dict[str, Tensor] = {}
    weights: dict[str, float] = {}
    out_px = units_to_grid_pixels(out, model_config, grid)
    target_px = target * (grid / CROP_SIZE)
    target_units = crop_pixels_to_units(target, model_config)
    if cfg.depth or cfg.normal:
        per = depth_l1(out, target_units, mask, region_w)
        if cfg.fits_tilt_free:  # a fit's tilt is worse than the network's own: its shape only
            per = torch.where(synthetic > 0.5, per, depth_l1_shape(out, target_units, mask, region_w))
        terms["depth"], weights["depth"] = (sample_w * per).mean(), cfg.depth
        per = normal_loss(out_px, target_px, mask, cfg.normal_erode_px, target_w)
        terms["normal"], weights["normal"] = (sample_w * per).mean(), cfg.normal
    if cfg.plane:
        per = plane_l1(out, target_units, mask)
        terms["plane"], weights["plane"] = (synthetic * per).mean(), cfg.plane
    if cfg.gradient:
        per = gradient_l1(out_px, target_px, mask, cfg.normal_erode_px, target_w)
        terms["gradient"], weights["gradient"] = (sample_w * per).mean(), cfg.gradient
    if cfg.band:
        per = band_l1(out_px, target_px, mask, cfg.pair_sigma_px * grid / CROP_SIZE, target_w)
        terms["band"], weights["band"] = (sample_w * per).mean(), cfg.band
    if stage == "finer":
        # The self-supervised terms need no target depth: they cover the whole face mask.
        face = batch["face_mask"]
        if cfg.shading:
            per = shading_loss(out_px, batch["image"], face, cfg.albedo_sigma * grid, cfg.sh_reg, cfg.normal_erode_px)
            shading_w = synthetic * cfg.shading_synthetic + (1.0 - synthetic)  # (B,)
            terms["shading"], weights["shading"] = (shading_w * per).mean(), cfg.shading
        base = pred["fine"].detach()
        added_px = out_px - units_to_grid_pixels(base, model_config, grid)  # what Fr-Net adds
        if cfg.detail:
            true_px = (batch["depth"] - batch["depth_base"]) * (grid / CROP_SIZE)
            per = gradient_l1(added_px, true_px, mask, cfg.normal_erode_px, pixel_w)
            terms["detail"], weights["detail"] = (synthetic * per).mean(), cfg.detail
        if cfg.fidelity:
            terms["fidelity"], weights["fidelity"] = depth_l1(out, base, face).mean(), cfg.fidelity
        if cfg.laplacian:
            terms["laplacian"], weights["laplacian"] = laplacian_loss(added_px, face).mean(), cfg.laplacian
    total = sum((weights[k] * v for k, v in terms.items()), out.new_zeros(()))
    return total, terms
