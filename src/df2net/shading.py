"""Spherical-harmonic (SH) Lambertian shading and lighting fits, as pure tensor functions.

Irradiance follows Ramamoorthi & Hanrahan, "An Efficient Representation for Irradiance
Environment Maps" (SIGGRAPH 2001): with the incoming radiance expanded in real SH,
``L(w) = sum_lm L_lm Y_lm(w)``, the irradiance at a surface of normal ``n`` is
``E(n) = sum_lm A_l L_lm Y_lm(n)`` with ``A_0 = pi``, ``A_1 = 2 pi / 3``, ``A_2 = pi / 4``.
:func:`sh_basis` returns ``A_l Y_lm(n)`` (the constants folded in), so shading is a dot product
with the 9 *radiance* coefficients ``L_lm``: ``shade(n, L) = sh_basis(n) @ L``.

The 9 terms, in this order (``n = (x, y, z)`` unit, in the conventions' frame: X right, Y up,
Z toward the viewer)::

    0: l=0 m= 0   1                 pi   * 0.282095
    1: l=1 m=-1   y                 2pi/3 * 0.488603
    2: l=1 m= 0   z                 2pi/3 * 0.488603
    3: l=1 m= 1   x                 2pi/3 * 0.488603
    4: l=2 m=-2   x y               pi/4 * 1.092548
    5: l=2 m=-1   y z               pi/4 * 1.092548
    6: l=2 m= 0   3 z^2 - 1         pi/4 * 0.315392
    7: l=2 m= 1   x z               pi/4 * 1.092548
    8: l=2 m= 2   x^2 - y^2         pi/4 * 0.546274

Coefficient shapes: ``(9,)`` grayscale, ``(9, C)`` per colour channel, and with leading batch
dims ``(B, 9)`` / ``(B, 9, C)`` matched against the leading dims of the normals. Every function
takes torch tensors (differentiable) and also accepts numpy arrays, returning numpy then.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "SH_CONSTANTS",
    "sh_basis",
    "shade",
    "shade_xyz",
    "fit_sh_lighting",
    "fit_sh_lighting_xyz",
    "solve_spd",
    "ambient_sh",
    "directional_sh",
    "random_sh_lighting",
    "shading_to_image",
    "luminance",
]

_PI = math.pi
#: ``A_l * normalisation`` for each of the 9 basis terms, in :func:`sh_basis` order.
SH_CONSTANTS: tuple[float, ...] = (
    _PI * 0.5 * math.sqrt(1.0 / _PI),  # 0.282095
    2.0 * _PI / 3.0 * 0.5 * math.sqrt(3.0 / _PI),  # 0.488603
    2.0 * _PI / 3.0 * 0.5 * math.sqrt(3.0 / _PI),
    2.0 * _PI / 3.0 * 0.5 * math.sqrt(3.0 / _PI),
    _PI / 4.0 * 0.5 * math.sqrt(15.0 / _PI),  # 1.092548
    _PI / 4.0 * 0.5 * math.sqrt(15.0 / _PI),
    _PI / 4.0 * 0.25 * math.sqrt(5.0 / _PI),  # 0.315392
    _PI / 4.0 * 0.5 * math.sqrt(15.0 / _PI),
    _PI / 4.0 * 0.25 * math.sqrt(15.0 / _PI),  # 0.546274
)

#: Rec. 709 / sRGB luma weights (applied to whatever encoding the input has).
_LUMA = (0.2126, 0.7152, 0.0722)

F = TypeVar("F", bound=Callable[..., Any])


def _numpy_io(fn: F) -> F:
    """Let a torch function take numpy arrays: convert in, and back out if any input was numpy."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was_numpy = any(isinstance(a, np.ndarray) for a in (*args, *kwargs.values()))
        if not was_numpy:
            return fn(*args, **kwargs)
        conv = [torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in args]
        kw = {k: torch.as_tensor(a) if isinstance(a, np.ndarray) else a for k, a in kwargs.items()}
        out = fn(*conv, **kw)
        return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out

    return wrapper  # type: ignore[return-value]


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.float()


@_numpy_io
def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 irradiance SH basis values of unit normals (Lambertian constants folded in).

    Args:
        normals: ``(..., 3)`` unit normals ``(x, y, z)``.

    Returns:
        ``(..., 9)`` in the order documented in the module docstring.
    """
    n = _float(normals)
    c = torch.tensor(SH_CONSTANTS, dtype=n.dtype, device=n.device)
    return torch.stack(_sh_terms(n[..., 0], n[..., 1], n[..., 2]), dim=-1) * c


def _sh_terms(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The 9 SH polynomials of the normal's components, in :func:`sh_basis` order (no constants)."""
    return (torch.ones_like(x), y, z, x, x * y, y * z, 3.0 * z * z - 1.0, x * z, x * x - y * y)


def _batch_shape(coeffs: torch.Tensor) -> tuple[tuple[int, ...], bool]:
    """Leading batch dims of SH coefficients and whether they are per colour channel."""
    if coeffs.shape[-1] == 9:
        return tuple(coeffs.shape[:-1]), False
    if coeffs.ndim >= 2 and coeffs.shape[-2] == 9:
        return tuple(coeffs.shape[:-2]), True
    raise ValueError(f"SH coefficients must be (..., 9) or (..., 9, C), got {tuple(coeffs.shape)}")


def shade_xyz(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, sh_coeffs: torch.Tensor) -> torch.Tensor:
    """Grayscale :func:`shade` from the normals' three components, each ``(B, ...)``, and
    ``sh_coeffs (B, 9)``: the same sum, without stacking the basis (for large images)."""
    out = torch.zeros_like(x)
    for i, (k, term) in enumerate(zip(SH_CONSTANTS, _sh_terms(x, y, z))):
        out = out + k * sh_coeffs[:, i].reshape(-1, *([1] * (x.ndim - 1))) * term
    return out


@_numpy_io
def shade(normals: torch.Tensor, sh_coeffs: torch.Tensor) -> torch.Tensor:
    """Lambertian irradiance of unit normals under SH lighting (unit albedo).

    Args:
        normals: ``(*B, ..., 3)`` unit normals; the leading dims match the coefficients' batch.
        sh_coeffs: ``(*B, 9)`` grayscale or ``(*B, 9, C)`` per channel (``*B`` may be empty).

    Returns:
        ``(*B, ...)`` grayscale, or ``(*B, ..., C)`` per channel.
    """
    basis = sh_basis(normals)  # (*B, ..., 9)
    c = sh_coeffs.to(basis.dtype)
    batch, colour = _batch_shape(c)
    if basis.shape[: len(batch)] != batch:
        raise ValueError(f"normals {tuple(normals.shape)} do not start with SH batch dims {batch}")
    extra = basis.ndim - 1 - len(batch)
    if colour:
        c = c.reshape(*batch, *([1] * extra), 9, c.shape[-1])
        return (basis.unsqueeze(-1) * c).sum(-2)
    c = c.reshape(*batch, *([1] * extra), 9)
    return (basis * c).sum(-1)


@_numpy_io
def fit_sh_lighting(
    normals: torch.Tensor,
    intensity: torch.Tensor,
    mask: torch.Tensor | None = None,
    albedo: torch.Tensor | None = None,
    reg: float = 1e-5,
) -> torch.Tensor:
    """Least-squares SH lighting per image: ``min ||mask (albedo * shade(n, L) - I)||^2``.

    Solved through the normal equations, normalised by the pixel count, with a small ridge
    ``reg * |L|^2``; differentiable in all tensor inputs.

    Args:
        normals: ``(*B, H, W, 3)`` unit normals (any spatial shape works: ``(*B, ..., 3)``).
        intensity: ``(*B, H, W)`` grayscale or ``(*B, H, W, C)`` colour observations.
        mask: ``(*B, H, W)`` bool / float weights; None uses every pixel.
        albedo: broadcastable to ``intensity`` (e.g. ``(*B, H, W)`` or ``(*B, H, W, C)``); None
            means 1.
        reg: ridge weight (relative to the mean squared basis value, which is order 1).

    Returns:
        ``(*B, 9)`` for grayscale or ``(*B, 9, C)`` for colour.
    """
    n = _float(normals)
    spatial = n.shape[:-1]
    colour = tuple(intensity.shape) != tuple(spatial)
    if colour and tuple(intensity.shape[:-1]) != tuple(spatial):
        raise ValueError(f"intensity {tuple(intensity.shape)} does not match normals {tuple(n.shape)}")
    obs = intensity.to(n.dtype)
    if not colour:
        obs = obs.unsqueeze(-1)
    chans = obs.shape[-1]
    w = torch.ones(spatial, dtype=n.dtype, device=n.device) if mask is None else mask.to(n.dtype)
    w = w.expand(spatial)
    if albedo is None:
        alb = torch.ones_like(obs)
    else:
        alb = albedo.to(n.dtype)
        alb = (alb if colour else alb.unsqueeze(-1)).expand_as(obs)

    # Batch dims are those of the normals minus the image dims; the image is the last 2 (or,
    # for a single flat set of normals, last 1) dims. Flatten the image to P pixels.
    img_dims = 2 if n.ndim >= 3 else 1
    batch = tuple(spatial[: len(spatial) - img_dims])
    basis = sh_basis(n).reshape(*batch, -1, 9)  # (*B, P, 9)
    w = w.reshape(*batch, -1)  # (*B, P)
    obs = obs.reshape(*batch, -1, chans)  # (*B, P, C)
    alb = alb.reshape(*batch, -1, chans)
    # The normal equations in float64: over a face's normals the constant, z and 3z^2 - 1 terms are
    # nearly collinear, and float32 sums (whose order differs between runtimes) move the solution.
    f64 = torch.float64
    count = w.sum(-1).clamp_min(1.0)[..., None, None, None].to(f64)  # (*B, 1, 1, 1)
    design = (basis.unsqueeze(-3) * alb.transpose(-1, -2).unsqueeze(-1)).to(f64)  # (*B, C, P, 9)
    wd = design * w.unsqueeze(-2).unsqueeze(-1).to(f64)
    ata = wd.transpose(-1, -2) @ design / count  # (*B, C, 9, 9)
    atb = (wd.transpose(-1, -2) @ obs.transpose(-1, -2).unsqueeze(-1).to(f64)) / count  # (*B, C, 9, 1)
    eye = torch.eye(9, dtype=f64, device=n.device)
    sol = solve_spd(ata + reg * eye, atb)[..., 0].to(n.dtype)  # (*B, C, 9)
    sol = sol.transpose(-1, -2)  # (*B, 9, C)
    return sol if colour else sol[..., 0]


def fit_sh_lighting_xyz(
    x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, intensity: torch.Tensor, mask: torch.Tensor, reg: float = 1e-5
) -> torch.Tensor:
    """:func:`fit_sh_lighting` for grayscale images, unit albedo and a 0/1 mask, from the normals'
    three components: the same solution, for less work on large images.

    Args:
        x, y, z: ``(B, H, W)`` the unit normals' components.
        intensity: ``(B, H, W)`` grayscale observations.
        mask: ``(B, H, W)`` bool, the pixels fitted.
        reg: ridge weight, as :func:`fit_sh_lighting`'s.

    Returns:
        ``(B, 9)``. With 0/1 weights ``A^T W A = (W A)^T (W A)``, so only the masked basis
        goes to float64, once, and no albedo product is formed.
    """
    f64 = torch.float64
    batch = x.shape[0]
    basis = torch.stack([k * term for k, term in zip(SH_CONSTANTS, _sh_terms(x, y, z))], dim=-1).reshape(batch, -1, 9)
    keep = mask.reshape(batch, -1, 1)
    wd = torch.where(keep, basis, torch.zeros((), dtype=basis.dtype, device=basis.device)).to(f64)  # (B, P, 9)
    count = keep.sum(dim=(-2, -1)).clamp_min(1).to(f64)[:, None, None]  # (B, 1, 1)
    ata = wd.transpose(-1, -2) @ wd / count  # (B, 9, 9)
    atb = wd.transpose(-1, -2) @ intensity.reshape(batch, -1, 1).to(f64) / count  # (B, 9, 1)
    eye = torch.eye(9, dtype=f64, device=x.device)
    return solve_spd(ata + reg * eye, atb)[..., 0].to(basis.dtype)


def solve_spd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a^-1 b`` for symmetric positive definite ``a (..., n, n)`` and ``b (..., n, k)``.

    Gauss-Jordan elimination without pivoting (stable for such matrices), in float64 and in plain
    tensor arithmetic, so that it also exports to ONNX (which has no linear solver); ``n`` is
    small here (the 9 SH terms). Returns ``b``'s dtype.
    """
    n = a.shape[-1]
    m = torch.cat([a, b], dim=-1).to(torch.float64)
    rows = torch.arange(n, device=a.device)
    for k in range(n):
        pivot_row = m[..., k : k + 1, :] / m[..., k : k + 1, k : k + 1]
        col = m[..., :, k : k + 1]
        is_k = (rows == k).to(m.dtype)[:, None]
        m = m - col * pivot_row * (1.0 - is_k) + (pivot_row - m[..., k : k + 1, :]) * is_k
    return m[..., :, n:].to(b.dtype)


def ambient_sh(level: float | np.ndarray) -> np.ndarray:
    """SH coefficients of uniform light giving irradiance ``level`` everywhere.

    Args:
        level: scalar, or ``(C,)`` per channel.

    Returns:
        ``(9,)`` or ``(9, C)`` float64.
    """
    level = np.asarray(level, dtype=np.float64)
    out = np.zeros((9, *level.shape))
    out[0] = level / SH_CONSTANTS[0]
    return out


def directional_sh(direction: np.ndarray, intensity: float | np.ndarray = 1.0) -> np.ndarray:
    """SH coefficients of a distant light from ``direction`` (towards the light).

    Its irradiance is the order-2 approximation of ``intensity * max(n . d, 0)``: exact
    ``intensity`` facing the light, slightly negative (down to ``-0.04 * intensity``) around 120
    degrees away, so pair it with an ambient term of at least that.

    Args:
        direction: ``(3,)`` in the conventions' frame (need not be unit).
        intensity: scalar, or ``(C,)`` per channel.

    Returns:
        ``(9,)`` or ``(9, C)`` float64.
    """
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    x, y, z = d
    # Radiance of a delta light: L_lm = I * Y_lm(d) (plain SH, without the A_l folded in).
    a = np.array(SH_CONSTANTS)
    a_l = np.array([_PI] + [2 * _PI / 3] * 3 + [_PI / 4] * 5)
    y_lm = (a / a_l) * np.array([1.0, y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y])
    inten = np.asarray(intensity, dtype=np.float64)
    return y_lm.reshape(9, *([1] * inten.ndim)) * inten


def random_sh_lighting(
    rng: np.random.Generator,
    colour: bool = True,
    ambient: tuple[float, float] = (0.35, 0.55),
    strength: tuple[float, float] = (0.35, 0.65),
    max_angle_deg: float = 60.0,
    tint: float = 0.06,
    min_angle_deg: float = 0.0,
) -> np.ndarray:
    """Plausible face lighting: strong ambient plus one dominant light mostly from the front.

    The light's direction is ``min_angle_deg`` to ``max_angle_deg`` from +Z (toward the viewer;
    a large minimum gives side and top light, the cue that tells a groove from a mark), its azimuth
    uniform; ambient level and light strength are uniform in their ranges; colour lighting gets a
    slight random tint per channel (a warm/cool shift of about ``tint``). The irradiance is
    positive everywhere (ambient exceeds the order-2 light's undershoot), so on the front
    hemisphere, with the defaults, it lies in roughly [0.3, 1.2].

    Args:
        rng: the random generator (deterministic per seed).
        colour: return ``(9, 3)`` RGB coefficients, else ``(9,)`` grayscale.

    Returns:
        ``(9, 3)`` or ``(9,)`` float32 SH coefficients for :func:`shade`.
    """
    amb = rng.uniform(*ambient)
    s = rng.uniform(*strength)
    theta = np.deg2rad(min_angle_deg + (max_angle_deg - min_angle_deg) * np.sqrt(rng.uniform()))
    phi = rng.uniform(0.0, 2.0 * np.pi)
    d = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    if colour:
        warm = rng.normal(0.0, tint)  # > 0 warmer (more red, less blue)
        light_col = np.clip(1.0 + np.array([warm, 0.0, -warm]) + rng.normal(0.0, tint / 3, 3), 0.8, 1.2)
        amb_col = np.clip(1.0 + rng.normal(0.0, tint / 2, 3), 0.85, 1.15)
        coeffs = ambient_sh(amb * amb_col) + directional_sh(d, s * light_col)
    else:
        coeffs = ambient_sh(amb) + directional_sh(d, s)
    return coeffs.astype(np.float32)


@_numpy_io
def shading_to_image(albedo: torch.Tensor, shading: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lambertian image ``albedo * shading``.

    Args:
        albedo: ``(..., 3)`` or ``(...,)`` reflectance in [0, 1].
        shading: ``(...,)`` grayscale (broadcast over channels) or ``(..., 3)`` irradiance.
        clip: clamp the result to [0, 1].

    Returns:
        ``(..., 3)`` (or the albedo's shape when both are grayscale).
    """
    a = _float(albedo)
    s = shading.to(a.dtype)
    if s.ndim == a.ndim - 1:
        s = s.unsqueeze(-1)
    img = a * s
    return img.clamp(0.0, 1.0) if clip else img


@_numpy_io
def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Rec. 709 luma ``0.2126 R + 0.7152 G + 0.0722 B``: ``(..., 3) -> (...)``."""
    x = _float(rgb)
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
    return (x * w).sum(-1)
