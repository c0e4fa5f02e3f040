"""The relief Fr-Net: fine relief read from shading, apart from albedo, as a high-pass residual.

A small U-Net at full crop resolution. Its output is high-passed with the same operator as its
target, so it can only add or remove detail at scales of about ``sigma`` pixels and never bends
the coarse face. Three modes (:data:`RELIEF_MODES`) say what it sees and what happens to F-Net's own
detail band ``hp(fine)``:

- ``"band"``: the network sees the masked colour crop, the high-pass of its log-luminance
  (shading ratios are albedo-independent where the albedo is smooth; marks are not) and of its
  log-chromaticity (shading keeps the channels' ratios, pigment does not), the slopes and the
  curvature term ``-(sigma^2 / 2) lap(smooth fine)`` of F-Net's smooth depth (where the light
  comes from; what the high-pass of a smooth surface is) and a fixed gate
  ``k`` from the local RMS of F-Net's detail band (:data:`BAND_GATE_PX`): 0 on smooth skin, 1 on
  the nose, eyelids and lips. It does not see F-Net's detail band itself, so the colour F-Net
  pressed into it (and F-Net's upsampling texture) cannot pass through:

      finer = fine - (1 - k) * hp(fine) + hp(gain * relief)

  On smooth skin the network makes the whole detail band (the face's own curvature there and the
  relief); on structure F-Net's band stays and the network adds the relief.
- ``"gate"``: the network also sees ``hp(fine)`` and predicts the gate
  itself: ``finer = fine + hp(gain * relief) - (1 - k) * hp(fine)``; it learnt to keep most of
  F-Net's band (k about 0.9), colour-made detail included.
- ``"shade"`` (the shipped file's relief Fr-Net): ``"gate"``'s inputs and output rule, plus what
  F-Net's surface would look like: its log shading under the 9-term SH light fitted to the crop
  (:func:`shading_features`), high-passed, and that log shading's derivatives with respect to the
  two slopes (which way a groove would darken under this light), and the high-passed
  log-chromaticity. Where the photo is darker than F-Net's surface explains and the darkening
  follows the light, it is relief; where it does not, it is paint.

Training (``df2net train-relief``, :mod:`df2net.train.relief`) makes ``hp(finer - true base)``
the true relief of renders with albedo-only marks painted on many of them. Every operator here is
a plain tensor function so training and inference compute the same features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from df2net.model.config import RELIEF_MODES

#: The channels of :func:`relief_features` by mode, in order. ``"band"`` shows the network all but
#: its last channel (``hp_fine`` is used for the output only); ``"gate"`` shows all of them.
FEATURE_NAMES = {
    "gate": ("red", "green", "blue", "hp_log_lum", "hp_fine", "slope_x", "slope_y"),
    "band": ("red", "green", "blue", "hp_log_lum", "hp_log_rg", "hp_log_bg", "slope_x", "slope_y", "curvature", "gate_k", "hp_fine"),
    "shade": (
        "red", "green", "blue", "hp_log_lum", "hp_fine", "slope_x", "slope_y",
        "hp_log_shade", "log_shade_dx", "log_shade_dy", "hp_log_rg", "hp_log_bg",
    ),
}

#: Channels of :func:`relief_features` and those the network sees (the first ones), by mode.
FEATURE_CHANNELS = {mode: len(names) for mode, names in FEATURE_NAMES.items()}
NETWORK_CHANNELS = {"gate": FEATURE_CHANNELS["gate"], "band": FEATURE_CHANNELS["band"] - 1, "shade": FEATURE_CHANNELS["shade"]}

#: Modes whose network predicts the gate on F-Net's detail band itself (a second head row).
GATED_MODES = ("gate", "shade")

#: Feature channel of ``"band"`` mode's gate.
GATE_CHANNEL = FEATURE_NAMES["band"].index("gate_k")

#: Feature channel of F-Net's detail band, by mode.
HP_FINE_CHANNEL = {mode: names.index("hp_fine") for mode, names in FEATURE_NAMES.items()}

#: Feature channels that change sign when a patch is mirrored (the x slope and the shading's
#: sensitivity to it), by mode.
MIRROR_SIGN_CHANNELS = {mode: [i for i, n in enumerate(names) if n in ("slope_x", "log_shade_dx")] for mode, names in FEATURE_NAMES.items()}

#: Feature channels that are logarithms of the image or of its shading (a gamma change of the
#: image scales them alike), by mode.
LOG_CHANNELS = {mode: [i for i, n in enumerate(names) if "log_" in n] for mode, names in FEATURE_NAMES.items()}

#: ``"band"`` mode's gate: the local RMS (Gaussian window of ``sigma``) of F-Net's detail band, in
#: crop pixels, at which F-Net's band starts to be kept (k = 0 below) and is kept whole (k = 1).
#: On validation renders that RMS is 0.05-0.2 px where the true base is smooth near the wrinkles
#: (10th-90th percentile) and 0.3-3 px on the nose, eye sockets and lips.
BAND_GATE_PX = (0.2, 0.45)

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


def feature_mask(features: Tensor) -> Tensor:
    """The face mask of :func:`relief_features` ``(B, C, H, W)``: where its colour is not zero.

    The features hold the colour times the mask, 0 off the face (a face pixel is never 0 in all
    three channels: 8-bit values map to odd multiples of 1/255 in [-1, 1]).
    """
    return (features[:, :3] != 0).any(dim=1, keepdim=True).to(features.dtype)


def input_mask(x: Tensor) -> Tensor:
    """The face mask of a masked network input ``x (B, 3, H, W)`` in [-1, 1] (off-mask is -1)."""
    return (x > -1.0 + 1e-3).any(dim=1, keepdim=True).to(x.dtype)


def _smooth_slopes(fine_px: Tensor, mask: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """The smooth fine depth (masked low-pass) and its central-difference x and y slopes."""
    smooth = masked_lowpass(fine_px, mask, sigma)
    gx = F.pad((smooth[..., :, 2:] - smooth[..., :, :-2]) * 0.5, (1, 1, 0, 0)) * mask
    gy = F.pad((smooth[..., 2:, :] - smooth[..., :-2, :]) * 0.5, (0, 0, 1, 1)) * mask
    return smooth, gx, gy


def band_gate(hp_fine: Tensor, mask: Tensor, sigma: float) -> Tensor:
    """``"band"`` mode's gate ``k (B, 1, H, W)`` in [0, 1] from F-Net's detail band (:data:`BAND_GATE_PX`)."""
    rms = masked_lowpass(hp_fine * hp_fine, mask, sigma).clamp_min(0.0).sqrt()
    lo, hi = BAND_GATE_PX
    return ((rms - lo) / (hi - lo)).clamp(0.0, 1.0) * mask


def relief_features(x: Tensor, fine_px: Tensor, sigma: float, mode: str = "gate") -> Tensor:
    """The relief network's features ``(B, FEATURE_CHANNELS[mode], H, W)`` from the crop and F-Net's depth.

    Args:
        x: masked crop ``(B, 3, H, W)`` in [-1, 1].
        fine_px: F-Net's depth ``(B, 1, H, W)`` in pixels of this grid (any offset).
        sigma: the high-pass scale in pixels.
        mode: a :data:`RELIEF_MODES` name.
    """
    if mode not in RELIEF_MODES:
        raise ValueError(f"relief mode must be one of {RELIEF_MODES}, got {mode!r}")
    mask = input_mask(x)
    rgb01 = (x + 1.0) * 0.5
    lum = (0.2126 * rgb01[:, 0:1] + 0.7152 * rgb01[:, 1:2] + 0.0722 * rgb01[:, 2:3]).clamp(0.0, 1.0)
    log_lum = torch.log(lum.pow(2.2) + _LUM_EPS)
    hp_lum = highpass(log_lum, mask, sigma)
    hp_fine = highpass(fine_px, mask, sigma)
    smooth, gx, gy = _smooth_slopes(fine_px, mask, sigma)
    if mode == "gate":
        return torch.cat([x * mask, hp_lum * 4.0, hp_fine, gx, gy], dim=1)
    # Shading scales the three channels alike; pigment (a mark) changes their ratios.
    lin = rgb01.clamp(0.0, 1.0).pow(2.2) + _LUM_EPS
    hp_rg = highpass(torch.log(lin[:, 0:1] / lin[:, 1:2]), mask, sigma)
    hp_bg = highpass(torch.log(lin[:, 2:3] / lin[:, 1:2]), mask, sigma)
    if mode == "shade":
        hp_shade, dlog_dx, dlog_dy = shading_features(lum.pow(2.2), fine_px, mask, sigma)
        return torch.cat(
            [x * mask, hp_lum * 4.0, hp_fine, gx, gy, hp_shade * 4.0, dlog_dx, dlog_dy, hp_rg * 4.0, hp_bg * 4.0], dim=1
        )
    curvature = -0.5 * sigma**2 * _laplacian(smooth) * _erode_mask(mask, _POOL)
    gate = band_gate(hp_fine, mask, sigma)
    return torch.cat([x * mask, hp_lum * 4.0, hp_rg * 4.0, hp_bg * 4.0, gx, gy, curvature, gate, hp_fine], dim=1)


#: Slope step (px per px) of the finite differences of :func:`shading_features`, and the bound on
#: its derivatives (where the shading nears 0 the logarithm's slope grows without bound).
_SLOPE_STEP = 0.05
_MAX_LOG_SLOPE = 8.0


def _normal_of_slopes(p: Tensor, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The unit normal's components of the surface with slopes ``p = dz/du``, ``q = dz/dv``."""
    nz = torch.rsqrt(1.0 + p * p + q * q)
    return -p * nz, q * nz, nz


def _shade_of_slopes(p: Tensor, q: Tensor, light: Tensor) -> Tensor:
    """Grayscale SH shading ``(B, 1, H, W)`` of the surface with slopes ``p = dz/du``, ``q = dz/dv``."""
    from df2net.shading import shade_xyz

    return shade_xyz(*_normal_of_slopes(p, q), light)


def shading_features(lum_linear: Tensor, depth_px: Tensor, mask: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """What the image's shading says about a depth map, under the light fitted to both.

    A 9-term SH light (grayscale, albedo 1) is fitted by least squares to the linear luminance
    ``lum_linear (B, 1, H, W)`` over the normals of ``depth_px (B, 1, H, W)`` inside ``mask``
    eroded by ``2 sigma`` (the silhouette's steep normals are F-Net's least sure). Returns, each
    ``(B, 1, H, W)`` and 0 off the mask: the detail band of the log shading that surface makes
    under that light (next to the image's own log-luminance band, their difference is what the
    surface gets wrong, or the albedo), and the log shading's derivatives with respect to the
    slopes ``dz/du`` and ``-dz/dv`` (how a change of slope would change it: the light's direction).
    """
    from df2net.geometry import depth_slopes_torch
    from df2net.shading import fit_sh_lighting_xyz

    p, q = depth_slopes_torch(depth_px, mask > 0)
    nx, ny, nz = (c[:, 0] for c in _normal_of_slopes(p, q))  # (B, H, W) each
    fit_mask = _erode_mask(mask, int(round(2 * sigma)))[:, 0] > 0.5
    light = fit_sh_lighting_xyz(nx, ny, nz, lum_linear[:, 0], fit_mask)
    log_shade = lambda dp, dq: torch.log(_shade_of_slopes(p + dp, q + dq, light).clamp_min(0.0) + _LUM_EPS)  # noqa: E731
    h = _SLOPE_STEP
    d_dx = ((log_shade(h, 0.0) - log_shade(-h, 0.0)) / (2 * h)).clamp(-_MAX_LOG_SLOPE, _MAX_LOG_SLOPE) * mask
    d_dy = (-(log_shade(0.0, h) - log_shade(0.0, -h)) / (2 * h)).clamp(-_MAX_LOG_SLOPE, _MAX_LOG_SLOPE) * mask
    return highpass(log_shade(0.0, 0.0), mask, sigma), d_dx, d_dy


def _laplacian(smooth: Tensor) -> Tensor:
    """Laplacian of a :func:`lowpass` output, per pixel², by second differences ``_POOL`` pixels apart.

    The low-pass is bilinear between knots ``_POOL`` pixels apart, so a one-pixel stencil would
    see its kinks (zero between knots, spikes at them); at the knots' spacing the second
    difference of a quadratic is exact everywhere.
    """
    h = _POOL
    p = F.pad(smooth, (h, h, h, h), mode="replicate")
    centre = p[..., h:-h, h:-h]
    return (p[..., h:-h, 2 * h :] + p[..., h:-h, : -2 * h] + p[..., 2 * h :, h:-h] + p[..., : -2 * h, h:-h] - 4.0 * centre) / h**2


def _erode_mask(mask: Tensor, px: int) -> Tensor:
    """``mask`` eroded by ``px`` pixels (a stencil that reaches off the face at its border)."""
    # A pixel stays where its whole square window is on the face (a box mean of 1: cheaper than a max pool).
    window = F.avg_pool2d(mask, 2 * px + 1, stride=1, padding=px, count_include_pad=True)
    return (window > 1.0 - 1e-4).to(mask.dtype) * mask


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

    A U-Net over :func:`relief_features` of ``mode`` with ``len(channels)`` levels (two 3x3
    convolutions per encoder level, one per decoder level; H and W multiples of
    ``2 ** (levels - 1)``), bilinear upsampling (no checkerboard) and a 1x1 head: the relief,
    times ``gain`` and high-passed at ``sigma`` inside the face mask, and in ``"gate"`` mode the
    gate's logit too (see the module docstring).
    """

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), sigma: float = 4.0, gain: float = 1.0, mode: str = "gate") -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("ReliefNet needs at least two levels")
        if mode not in RELIEF_MODES:
            raise ValueError(f"relief mode must be one of {RELIEF_MODES}, got {mode!r}")
        self.sigma = float(sigma)
        self.gain = float(gain)
        self.mode = mode
        self.down = nn.ModuleList()
        cin = NETWORK_CHANNELS[mode]
        for c in channels:
            self.down.append(_ConvPair(cin, c))
            cin = c
        self.up = nn.ModuleList()
        for c_skip in reversed(channels[:-1]):
            self.up.append(nn.Sequential(nn.Conv2d(cin + c_skip, c_skip, 3, padding=1), nn.LeakyReLU(0.1)))
            cin = c_skip
        self.head = nn.Conv2d(cin, 2 if mode in GATED_MODES else 1, 1)  # relief (pixels) [and the gate's logit]

    @property
    def divisor(self) -> int:
        return 2 ** (len(self.down) - 1)

    @torch.no_grad()
    def zero_detail(self) -> None:
        """Start with no relief (and in ``"gate"`` mode the gate half open, k = 0.5, where its
        gradient is largest: a nearly closed start, k = 0.98, left it stuck there)."""
        self.head.weight.zero_()
        self.head.bias.zero_()

    def features(self, fine_px: Tensor, x: Tensor) -> Tensor:
        """:func:`relief_features` of this network's mode and scale."""
        return relief_features(x, fine_px, self.sigma, self.mode)

    def forward_features(self, features: Tensor, mask: Tensor) -> Tensor:
        """The detail change ``(B, 1, H, W)`` in pixels from precomputed :meth:`features`."""
        if features.shape[-1] % self.divisor or features.shape[-2] % self.divisor:
            raise ValueError(f"ReliefNet needs H and W multiples of {self.divisor}, got {tuple(features.shape)}")
        skips = []
        h = features[:, : NETWORK_CHANNELS[self.mode]]
        for i, block in enumerate(self.down):
            if i:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = _conv_of_concat(block, h, skip)
        head = self.head(h)
        relief = highpass(head[:, 0:1] * self.gain, mask, self.sigma)
        c = HP_FINE_CHANNEL[self.mode]
        hp_fine = features[:, c : c + 1]
        if self.mode in GATED_MODES:
            drop = 1.0 - torch.sigmoid(head[:, 1:2])
            return relief - drop * hp_fine * mask
        k = features[:, GATE_CHANNEL : GATE_CHANNEL + 1]
        return relief - (1.0 - k) * hp_fine * mask

    def forward(self, fine_px: Tensor, x: Tensor) -> Tensor:
        """The detail change in pixels for F-Net's depth ``fine_px`` and the masked crop ``x``."""
        return self.forward_features(self.features(fine_px, x), input_mask(x))


def _conv_of_concat(block: nn.Sequential, a: Tensor, b: Tensor) -> Tensor:
    """``block(torch.cat([a, b], dim=1))`` for a block of a convolution and its activation,
    as the sum of the convolution's two halves: the same sum of products, without writing the
    concatenation (at full resolution, copying it and converting its layout cost ONNX Runtime
    more than the convolution; see benchmarks/README.md)."""
    conv, act = block[0], block[1]
    ca = a.shape[1]
    pad = conv.padding
    return act(F.conv2d(a, conv.weight[:, :ca], None, padding=pad) + F.conv2d(b, conv.weight[:, ca:], conv.bias, padding=pad))


def warm_start(net: ReliefNet, state: dict[str, Tensor], mode: str) -> int:
    """Copy a relief network's tensors of ``mode`` into ``net`` where they fit; returns how many.

    Tensors of the same shape are copied; the first convolution's input channels are matched by
    feature name (:data:`FEATURE_NAMES`; channels new to ``net`` start at zero) and the head's
    relief row is kept when the head's size differs. A ``net`` with more levels than the donor
    (a deeper U-Net, more context) keeps the donor's levels: its decoder blocks take the donor's
    in order from the shallowest, and each new decoder block starts as a pass-through of its
    skip (the new levels' contribution at zero), so it starts near the donor's output (exactly
    where the bottleneck's activations are positive: the extra LeakyReLU shrinks the rest).
    """
    state = _deepen_decoder(net, state)
    own = net.state_dict()
    first = "down.0.0.weight"
    copied = 0
    for key, value in state.items():
        if key not in own:
            continue
        if own[key].shape == value.shape:
            own[key] = value.clone()
        elif key == first:
            new = torch.zeros_like(own[key])
            old_names = FEATURE_NAMES[mode][: value.shape[1]]
            for i, name in enumerate(FEATURE_NAMES[net.mode][: new.shape[1]]):
                if name in old_names:
                    new[:, i] = value[:, old_names.index(name)]
            own[key] = new
        elif key.startswith("head."):
            own[key] = value[: own[key].shape[0]].clone()
        else:
            continue
        copied += 1
    net.load_state_dict(own)
    return copied


def _deepen_decoder(net: ReliefNet, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The donor's ``state`` with its decoder renumbered for a deeper ``net`` (see :func:`warm_start`)."""
    donor_levels = len({k.split(".")[1] for k in state if k.startswith("down.")})
    extra = len(net.down) - donor_levels
    if donor_levels < 2 or extra <= 0:
        return state
    out = {}
    for key, value in state.items():
        if key.startswith("up."):
            _, i, rest = key.split(".", 2)
            key = f"up.{int(i) + extra}.{rest}"
        out[key] = value
    for j in range(extra):
        conv = net.up[j][0]
        weight = torch.zeros_like(conv.weight)
        c_out = weight.shape[0]
        c_deep = weight.shape[1] - c_out  # the block sees cat(upsampled deeper level, skip)
        weight[torch.arange(c_out), c_deep + torch.arange(c_out), 1, 1] = 1.0
        out[f"up.{j}.0.weight"] = weight
        out[f"up.{j}.0.bias"] = torch.zeros_like(conv.bias)
    return out
