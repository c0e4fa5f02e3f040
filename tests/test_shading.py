"""Spherical-harmonic shading against a sphere whose normals are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from df2net.shading import (
    ambient_sh,
    directional_sh,
    fit_sh_lighting,
    fit_sh_lighting_xyz,
    luminance,
    random_sh_lighting,
    sh_basis,
    shade,
    shading_to_image,
)

S = 64


def _sphere_normals(size: int = S) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-hemisphere normals of a sphere filling the image; (H, W, 3) float64 and (H, W) mask."""
    c = (size - 1) / 2
    r = size / 2 - 1
    t = torch.arange(size, dtype=torch.float64)
    v, u = torch.meshgrid(t, t, indexing="ij")
    x, y = (u - c) / r, -(v - c) / r
    rr = x**2 + y**2
    mask = rr < 1
    z = torch.sqrt(torch.clamp(1 - rr, min=0))
    n = torch.stack([x, y, z], -1) * mask[..., None]
    return n, mask


def test_basis_matches_closed_form_and_cosine_lobe() -> None:
    n = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    b = sh_basis(n)
    assert b.shape == (2, 9)
    assert b[0, 0].item() == pytest.approx(math.pi * 0.282095, rel=1e-5)
    assert b[0, 2].item() == pytest.approx(2 * math.pi / 3 * 0.488603, rel=1e-5)
    assert b[0, 6].item() == pytest.approx(math.pi / 4 * 0.315392 * 2, rel=1e-5)
    assert b[1, 8].item() == pytest.approx(math.pi / 4 * 0.546274, rel=1e-5)
    # A light from d gives the order-2 approximation of max(n.d, 0): 17/16 facing, 3/32 at 90 deg.
    irr = shade(n, torch.as_tensor(directional_sh([0, 0, 1])))
    assert irr.tolist() == pytest.approx([1.0625, 0.09375])
    assert shade(n, torch.as_tensor(ambient_sh(0.4))).tolist() == pytest.approx([0.4, 0.4])


@pytest.mark.parametrize("colour", [False, True])
def test_fit_recovers_known_lighting(colour: bool) -> None:
    n, mask = _sphere_normals()
    rng = np.random.default_rng(0)
    true = torch.as_tensor(random_sh_lighting(rng, colour=colour), dtype=torch.float64)
    true = true + 0.05 * torch.as_tensor(rng.normal(size=true.shape))  # exercise every term
    albedo = torch.full((S, S, 3) if colour else (S, S), 0.7, dtype=torch.float64)
    img = albedo * shade(n, true)
    fit = fit_sh_lighting(n, img, mask, albedo=albedo, reg=1e-10)
    assert fit.shape == true.shape
    assert torch.allclose(fit, true, atol=1e-5)


def test_fit_is_batch_aware_and_numpy_friendly() -> None:
    n, mask = _sphere_normals(32)
    rng = np.random.default_rng(1)
    true = torch.as_tensor(np.stack([random_sh_lighting(rng) for _ in range(3)]), dtype=torch.float64)
    nb = n.expand(3, -1, -1, -1)
    img = shade(nb, true)  # (3, H, W, 3)
    assert img.shape == (3, 32, 32, 3)
    fit = fit_sh_lighting(nb, img, mask, reg=1e-10)
    assert fit.shape == (3, 9, 3) and torch.allclose(fit, true, atol=1e-5)
    fit_np = fit_sh_lighting(nb.numpy(), img.numpy(), mask.numpy(), reg=1e-10)
    assert isinstance(fit_np, np.ndarray) and np.allclose(fit_np, true.numpy(), atol=1e-5)
    # Batch of grayscale lights.
    gray = true[..., 0]
    assert torch.allclose(fit_sh_lighting(nb, shade(nb, gray), mask, reg=1e-10), gray, atol=1e-5)


def test_fit_from_components_equals_the_general_fit() -> None:
    """fit_sh_lighting_xyz (the relief network's) solves the same problem as fit_sh_lighting."""
    n, mask = _sphere_normals(48)
    rng = np.random.default_rng(3)
    true = torch.as_tensor(np.stack([random_sh_lighting(rng, colour=False) for _ in range(2)]), dtype=torch.float32)
    nb = n.to(torch.float32).expand(2, -1, -1, -1)
    img = shade(nb, true) + 0.01 * torch.as_tensor(rng.normal(size=(2, 48, 48)), dtype=torch.float32)
    masks = torch.stack([mask, mask & (torch.arange(48)[None, :] < 30)])  # a different mask per image
    general = fit_sh_lighting(nb, img, masks.to(torch.float32))
    from_xyz = fit_sh_lighting_xyz(nb[..., 0], nb[..., 1], nb[..., 2], img, masks)
    assert from_xyz.shape == (2, 9) and from_xyz.dtype == torch.float32
    assert torch.allclose(from_xyz, general, rtol=1e-6, atol=1e-7)
    assert torch.allclose(from_xyz, true, atol=0.02)  # and it recovers the light under the noise


def test_light_from_front_makes_centre_brightest() -> None:
    n, mask = _sphere_normals()
    coeffs = torch.as_tensor(ambient_sh(0.3) + directional_sh([0, 0, 1], 0.7))
    irr = shade(n, coeffs)
    irr = torch.where(mask, irr, torch.full_like(irr, -1.0))
    row, col = divmod(int(torch.argmax(irr)), S)
    assert abs(row - (S - 1) / 2) <= 1 and abs(col - (S - 1) / 2) <= 1
    # A light from the right brightens the right side.
    side = shade(n, torch.as_tensor(directional_sh([1, 0, 0.2])))
    assert side[S // 2, S - 8] > side[S // 2, 8]


def test_gradients_flow_through_shade_and_fit() -> None:
    n, mask = _sphere_normals(16)
    n = n.clone().requires_grad_(True)
    coeffs = torch.as_tensor(random_sh_lighting(np.random.default_rng(2)), dtype=torch.float64)
    coeffs.requires_grad_(True)
    shade(n, coeffs)[mask].sum().backward()
    assert n.grad is not None and coeffs.grad is not None
    assert torch.isfinite(n.grad).all() and n.grad.abs().sum() > 0 and coeffs.grad.abs().sum() > 0
    img = torch.rand(16, 16, dtype=torch.float64, requires_grad=True)
    fit_sh_lighting(n, img, mask).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_random_lighting_is_positive_over_front_hemisphere() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(size=(5000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d[:, 2] = np.abs(d[:, 2])
    for _ in range(50):
        c = random_sh_lighting(rng)
        assert c.shape == (9, 3) and c.dtype == np.float32
        irr = shade(d, c)
        assert irr.min() > 0.2 and irr.max() < 1.5
    assert random_sh_lighting(np.random.default_rng(9), colour=False).shape == (9,)
    a, b = random_sh_lighting(np.random.default_rng(9)), random_sh_lighting(np.random.default_rng(9))
    assert np.array_equal(a, b)


def test_image_helpers() -> None:
    albedo = np.full((4, 4, 3), 0.5)
    img = shading_to_image(albedo, np.full((4, 4), 3.0))
    assert img.shape == (4, 4, 3) and np.allclose(img, 1.0)
    assert np.allclose(shading_to_image(albedo, np.full((4, 4, 3), 0.5), clip=False), 0.25)
    assert luminance(np.ones((2, 3))).tolist() == pytest.approx([1.0, 1.0])
    assert luminance(torch.tensor([0.0, 1.0, 0.0])).item() == pytest.approx(0.7152)


def test_solve_spd_matches_a_linear_solver():
    from df2net.shading import solve_spd

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 9, 40, generator=g)
    a = x @ x.transpose(-1, -2) / 40 + 1e-5 * torch.eye(9)
    b = torch.randn(3, 2, 9, 2, generator=g)
    want = torch.linalg.solve(a.double(), b.double())
    got = solve_spd(a, b)
    assert got.dtype == b.dtype and got.shape == b.shape
    assert torch.allclose(got.double(), want, atol=1e-4 * float(want.abs().max()))
