"""The relief Fr-Net: fine relief read from shading, apart from albedo, as a high-pass residual.

A small U-Net that sees, at full crop resolution, the masked colour crop, the high-pass of its
log-luminance (shading ratios are albedo-independent where the albedo is smooth; marks are not),
the high-pass of F-Net's depth (what the fine stage already pressed into the surface) and the
slopes of F-Net's smooth depth (where the light comes from, relative to the surface). Its output
is high-passed again with the same operator, so it can only add or remove detail at scales of
about ``sigma`` pixels and never bends the coarse face. Beside the relief it predicts a gate
``k`` in [0, 1] that keeps F-Net's own detail band where it is structure (nose, eyelids, lips) and
drops it where it is F-Net's texture or the image's colour pressed in (smooth skin):

    finer = fine + hp(gain * relief) - (1 - k) * hp(fine)

It is trained (``df2net train --stage finer`` with a relief config) to make
``hp(finer - true base)`` the true relief of the renders, with albedo-only marks painted on many
of them, so it learns both to add grooves and to take out F-Net's colour-made false relief.
Every operator here is a plain tensor function so training and inference compute the same
features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Channels of :func:`relief_features`: RGB (3), hp log-luminance (1), hp fine depth (1),
#: slopes of the smooth fine depth (2).
FEATURE_CHANNELS = 7

#: Luminance floor (linear light) before the logarithm.
_LUM_EPS = 0.02


def gaussian_kernel1d(sigma: float, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """A normalised 1-D Gaussian of ``sigma`` pixels, radius ``ceil(3 sigma)``: ``(K,)``."""
    radius = max(int(math.ceil(3.0 * sigma)), 1)
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``x (B, C, H, W)`` with zero padding."""
    k = gaussian_kernel1d(sigma, x.device, x.dtype)
    c = x.shape[1]
    r = (k.numel() - 1) // 2
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)


#: The low-pass runs at 1/4 resolution (a 4x4 mean, a Gaussian, bilinear back up): about 30x
#: cheaper than a full-resolution Gaussian, and as smooth for a scale of 4 px or more.
_POOL = 4


def lowpass(x: Tensor, sigma: float) -> Tensor:
    """A smooth low-pass of ``x (B, C, H, W)`` of about a Gaussian of ``sigma`` px (H, W multiples of 4).

    4x4 mean pooling, a Gaussian of ``sqrt(sigma**2 - 2.5) / 4`` on the pooled grid, bilinear
    upsampling back: the three variances add up to about ``sigma**2``.
    """
    h, w = x.shape[-2:]
    if h % _POOL or w % _POOL:
        return blur(x, sigma)
    small = F.avg_pool2d(x, _POOL)
    small = blur(small, math.sqrt(max(sigma**2 - 2.5, 0.25)) / _POOL)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def masked_lowpass(x: Tensor, mask: Tensor, sigma: float) -> Tensor:
    """Normalised low-pass inside ``mask (B, 1, H, W)``: ``lowpass(x m) / lowpass(m)`` (0 off the mask)."""
    both = lowpass(torch.cat([x * mask, mask], dim=1), sigma)
    c = x.shape[1]
    return both[:, :c] / both[:, c:].clamp_min(1e-3) * mask


def highpass(x: Tensor, mask: Tensor, sigma: float) -> Tensor:
    """``x`` minus its masked low-pass, zero off the mask: the detail band below ``sigma`` px."""
    return (x - masked_lowpass(x, mask, sigma)) * mask


def input_mask(x: Tensor) -> Tensor:
    """The face mask of a masked network input ``x (B, 3, H, W)`` in [-1, 1] (off-mask is -1)."""
    return (x > -1.0 + 1e-3).any(dim=1, keepdim=True).to(x.dtype)


def relief_features(x: Tensor, fine_px: Tensor, sigma: float) -> Tensor:
    """The relief network's input ``(B, 7, H, W)`` from the masked crop and F-Net's depth.

    Args:
        x: masked crop ``(B, 3, H, W)`` in [-1, 1].
        fine_px: F-Net's depth ``(B, 1, H, W)`` in pixels of this grid (any offset).
        sigma: the high-pass scale in pixels.
    """
    mask = input_mask(x)
    rgb01 = (x + 1.0) * 0.5
    lum = (0.2126 * rgb01[:, 0:1] + 0.7152 * rgb01[:, 1:2] + 0.0722 * rgb01[:, 2:3]).clamp(0.0, 1.0)
    log_lum = torch.log(lum.pow(2.2) + _LUM_EPS)
    hp_lum = highpass(log_lum, mask, sigma)
    hp_fine = highpass(fine_px, mask, sigma)
    smooth = masked_lowpass(fine_px, mask, sigma)
    gx = (smooth[..., :, 2:] - smooth[..., :, :-2]) * 0.5
    gy = (smooth[..., 2:, :] - smooth[..., :-2, :]) * 0.5
    gx = F.pad(gx, (1, 1, 0, 0)) * mask
    gy = F.pad(gy, (0, 0, 1, 1)) * mask
    return torch.cat([x * mask, hp_lum * 4.0, hp_fine, gx, gy], dim=1)


class _ConvPair(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.LeakyReLU(0.1),
        )


class ReliefNet(nn.Module):
    """``(fine_px (B, 1, H, W), x (B, 3, H, W)) -> detail change (B, 1, H, W)`` in pixels.

    A U-Net over :func:`relief_features` with ``len(channels)`` levels (two 3x3 convolutions per
    encoder level, one per decoder level; H and W multiples of ``2 ** (levels - 1)``), bilinear
    upsampling (no checkerboard) and a 1x1 head of two maps: the relief, times ``gain`` and
    high-passed at ``sigma`` inside the face mask, and the gate logit (see the module docstring).
    """

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), sigma: float = 4.0, gain: float = 1.0) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("ReliefNet needs at least two levels")
        self.sigma = float(sigma)
        self.gain = float(gain)
        self.down = nn.ModuleList()
        cin = FEATURE_CHANNELS
        for c in channels:
            self.down.append(_ConvPair(cin, c))
            cin = c
        self.up = nn.ModuleList()
        for c_skip in reversed(channels[:-1]):
            self.up.append(nn.Sequential(nn.Conv2d(cin + c_skip, c_skip, 3, padding=1), nn.LeakyReLU(0.1)))
            cin = c_skip
        self.head = nn.Conv2d(cin, 2, 1)  # relief (pixels) and the gate's logit

    @property
    def divisor(self) -> int:
        return 2 ** (len(self.down) - 1)

    @torch.no_grad()
    def zero_detail(self) -> None:
        """Start with no relief and the gate half open (k = 0.5, where its gradient is largest:
        a nearly closed start, k = 0.98, left it stuck there)."""
        self.head.weight.zero_()
        self.head.bias.zero_()

    def forward_features(self, features: Tensor, mask: Tensor) -> Tensor:
        """The relief ``(B, 1, H, W)`` in pixels from precomputed :func:`relief_features`."""
        if features.shape[-1] % self.divisor or features.shape[-2] % self.divisor:
            raise ValueError(f"ReliefNet needs H and W multiples of {self.divisor}, got {tuple(features.shape)}")
        skips = []
        h = features
        for i, block in enumerate(self.down):
            if i:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        head = self.head(h)
        relief = highpass(head[:, 0:1] * self.gain, mask, self.sigma)
        drop = 1.0 - torch.sigmoid(head[:, 1:2])
        return relief - drop * features[:, 4:5] * mask

    def forward(self, fine_px: Tensor, x: Tensor) -> Tensor:
        """The relief in pixels for F-Net's depth ``fine_px`` and the masked crop ``x``."""
        return self.forward_features(relief_features(x, fine_px, self.sigma), input_mask(x))
