"""Small building blocks shared by D-Net, F-Net and Fr-Net.

The child names of the U-Net blocks (``layer2conv``, ``dlayer3tconv``, ``dlayer3bn`` ...) are the
names of the released DF2Net checkpoint, so its state dict loads into our modules unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Negative slope of the leaky ReLU in the D-Net encoder (pix2pix).
ENCODER_SLOPE: float = 0.2

#: Negative slope of the leaky ReLUs in F-Net and Fr-Net (PyTorch's default).
FUSION_SLOPE: float = 0.01


class UNetDown(nn.Sequential):
    """One encoder step of the D-Net U-Net: a 4x4 stride-2 convolution, then batch norm.

    ``(B, in_channels, H, W) -> (B, out_channels, H/2, W/2)``. The leaky ReLU that precedes the
    convolution in pix2pix is applied by the caller, because its output also feeds the skip
    connection (see :class:`~df2net.model.dnet.DNet`).
    Children: ``{name}conv`` and, if ``batch_norm``, ``{name}bn``.
    """

    def __init__(self, name: str, in_channels: int, out_channels: int, *, batch_norm: bool = True) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers[f"{name}conv"] = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        if batch_norm:
            layers[f"{name}bn"] = nn.BatchNorm2d(out_channels)
        super().__init__(layers)


class UNetUp(nn.Sequential):
    """One decoder step of the D-Net U-Net: ReLU, 4x4 stride-2 transposed conv, batch norm.

    ``(B, in_channels, H, W) -> (B, out_channels, 2H, 2W)``, with channel dropout (p = 0.5, active
    only in training mode) at the end when ``dropout``.
    Children: ``{name}relu``, ``{name}tconv``, ``{name}bn`` and, if ``dropout``, ``{name}dropout``.
    """

    def __init__(self, name: str, in_channels: int, out_channels: int, *, dropout: bool = False) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers[f"{name}relu"] = nn.ReLU()
        layers[f"{name}tconv"] = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        layers[f"{name}bn"] = nn.BatchNorm2d(out_channels)
        if dropout:
            layers[f"{name}dropout"] = nn.Dropout2d(0.5)
        super().__init__(layers)


@dataclass(frozen=True)
class FusionWidths:
    """Channel widths of F-Net and Fr-Net, all derived from one width ``nf``.

    The released networks use ``nf = 64``: 8-channel depth and colour branches, 16 after their
    fusion, 32 in the middle scale, 64 in the deepest one and a 16 -> 4 -> 1 output head.
    ``nf`` must be a positive multiple of 16 so that every width is a whole number.

    ``min_tail`` widens the last hidden layer of narrow networks: at ``nf = 16`` or ``32`` the
    ``nf / 16`` rule leaves 1 or 2 leaky-ReLU channels before the output, which often start in
    their flat negative part and learn 100x slower. 1 keeps the released rule.
    """

    nf: int
    min_tail: int = 1

    def __post_init__(self) -> None:
        if self.nf <= 0 or self.nf % 16:
            raise ValueError(f"fusion width must be a positive multiple of 16, got {self.nf}")
        if self.min_tail < 1:
            raise ValueError(f"min_tail must be >= 1, got {self.min_tail}")

    @property
    def branch(self) -> int:
        """Channels of each input branch (depth, colour): ``nf / 8``."""
        return self.nf // 8

    @property
    def fused(self) -> int:
        """Channels after concatenating the two branches, and of ``conv2``: ``nf / 4``."""
        return 2 * self.branch

    @property
    def hyper1(self) -> int:
        """Channels of the full-scale hypercolumn (branches + ``conv2``): ``nf / 2``."""
        return 2 * self.fused

    @property
    def middle(self) -> int:
        """Channels of the half-scale convolutions (``conv3``, ``conv4``): ``nf / 2``."""
        return self.nf // 2

    @property
    def hyper2(self) -> int:
        """Channels of the half-scale hypercolumn (``conv3`` + ``conv4``): ``nf``."""
        return 2 * self.middle

    @property
    def deep(self) -> int:
        """Channels of the quarter-scale convolutions (``conv5`` .. ``conv7``): ``nf``."""
        return self.nf

    @property
    def head(self) -> int:
        """Channels of the first 1x1 head convolution (``conv8``): ``nf / 4``."""
        return self.nf // 4

    @property
    def tail(self) -> int:
        """Channels of the second 1x1 head convolution (``conv9``): ``nf / 16``, at least ``min_tail``."""
        return max(self.nf // 16, self.min_tail)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3x3 convolution with bias that keeps the spatial size."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 1x1 convolution with bias."""
    return nn.Conv2d(in_channels, out_channels, 1)


def leaky(x: Tensor) -> Tensor:
    """The leaky ReLU of F-Net and Fr-Net (slope :data:`FUSION_SLOPE`)."""
    return F.leaky_relu(x, FUSION_SLOPE)


def conv_chain(x: Tensor, convs: Sequence[nn.Module]) -> Tensor:
    """Apply ``convs`` in turn, each followed by :func:`leaky`."""
    for conv in convs:
        x = leaky(conv(x))
    return x


def full_precision(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` in float32 even under ``torch.autocast``, for the layers that read or write depth.

    Depth is a large value with small variations (a few hundred pixels, detail of hundredths):
    bfloat16 keeps 8 bits of it, steps of about 0.3 px. Outside autocast this is ``layer(x)``.
    """
    if not torch.is_autocast_enabled(x.device.type):
        return layer(x)
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.float())


def fuse_depth_colour(
    depth: Tensor, colour: Tensor, conv_d: nn.Module, conv_c: nn.Module, conv2: nn.Module
) -> Tensor:
    """The input hypercolumn shared by F-Net and every Fr-Net stage.

    ``depth (B, 1, H, W)`` and ``colour (B, 3, H, W)`` each pass one 3x3 conv + leaky ReLU; the two
    are concatenated (``fused`` channels), pass ``conv2`` + leaky ReLU, and the result is
    concatenated to its input: ``(B, hyper1, H, W)`` ordered ``[depth branch, colour branch, conv2]``.
    """
    fused = torch.cat([leaky(full_precision(conv_d, depth)), leaky(conv_c(colour))], dim=1)
    return torch.cat([fused, leaky(conv2(fused))], dim=1)


def upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``like`` (``align_corners=False``)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
