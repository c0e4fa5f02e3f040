"""D-Net: the dense stage, a pix2pix U-Net from the RGB crop to a coarse depth map."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from df2net.model.blocks import ENCODER_SLOPE, UNetDown, UNetUp, full_precision
from df2net.model.config import DNET_DIVISOR


class DNet(nn.Module):
    """The dense stage: RGB ``(B, 3, H, W)`` in [-1, 1] -> depth ``(B, 1, H, W)``, network units.

    Eight 4x4 stride-2 convolutions go down to ``H / 256`` (widths ``nf, 2nf, 4nf, 8nf`` then
    ``8nf``), eight 4x4 stride-2 transposed convolutions come back up, each fed the previous
    decoder output concatenated with the encoder feature of the same size, and three 3x3
    transposed convolutions (``nf -> nf -> nf/2 -> 1``) end it. ``H`` and ``W`` must be multiples
    of 256. The output is unbounded.

    Skip connections carry the encoder features *after* their leaky ReLU, as in the released
    code (which applies that activation in place, so the tensor it concatenates is the activated
    one); every decoder step starts with a ReLU, so this equals concatenating them before it.
    Our forward uses no in-place operations.

    Module names (``layer1.layer1``, ``layer2.layer2conv``, ``dlayer8.dlayer8tconv``,
    ``add_transpose_conv_1`` ...) are those of the released checkpoint.
    """

    def __init__(self, channels: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        if channels < 2 or channels % 2:
            raise ValueError(f"D-Net width must be an even number >= 2, got {channels}")
        nf = channels
        self.channels = nf
        # Encoder: (B, 3, H, W) -> (B, 8nf, H/256, W/256).
        self.layer1 = nn.Sequential(
            OrderedDict(layer1=nn.Conv2d(in_channels, nf, 4, stride=2, padding=1, bias=False))
        )
        self.layer2 = UNetDown("layer2", nf, 2 * nf)
        self.layer3 = UNetDown("layer3", 2 * nf, 4 * nf)
        self.layer4 = UNetDown("layer4", 4 * nf, 8 * nf)
        self.layer5 = UNetDown("layer5", 8 * nf, 8 * nf)
        self.layer6 = UNetDown("layer6", 8 * nf, 8 * nf)
        self.layer7 = UNetDown("layer7", 8 * nf, 8 * nf)
        self.layer8 = UNetDown("layer8", 8 * nf, 8 * nf, batch_norm=False)
        # Decoder: each step after the first takes [previous output, skip] (twice the channels).
        self.dlayer8 = UNetUp("dlayer8", 8 * nf, 8 * nf, dropout=True)
        self.dlayer7 = UNetUp("dlayer7", 16 * nf, 8 * nf, dropout=True)
        self.dlayer6 = UNetUp("dlayer6", 16 * nf, 8 * nf, dropout=True)
        self.dlayer5 = UNetUp("dlayer5", 16 * nf, 8 * nf)
        self.dlayer4 = UNetUp("dlayer4", 16 * nf, 4 * nf)
        self.dlayer3 = UNetUp("dlayer3", 8 * nf, 2 * nf)
        self.dlayer2 = UNetUp("dlayer2", 4 * nf, nf)
        self.dlayer1 = UNetUp("dlayer1", 2 * nf, nf)
        # Head at full resolution: three 3x3 transposed convolutions down to one channel.
        self.add_transpose_conv_1 = nn.ConvTranspose2d(nf, nf, 3, padding=1, bias=False)
        self.add_transpose_bn_1 = nn.BatchNorm2d(nf)
        self.add_transpose_conv_2 = nn.ConvTranspose2d(nf, nf // 2, 3, padding=1, bias=False)
        self.add_transpose_bn_2 = nn.BatchNorm2d(nf // 2)
        self.add_transpose_conv_3 = nn.ConvTranspose2d(nf // 2, 1, 3, padding=1, bias=False)

    def dense_depth(self, x: Tensor) -> Tensor:
        """The D-Net depth of ``x (B, 3, H, W)``: ``(B, 1, H, W)``; H, W multiples of 256."""
        if x.ndim != 4 or x.shape[-1] % DNET_DIVISOR or x.shape[-2] % DNET_DIVISOR:
            raise ValueError(
                f"D-Net needs a (B, C, H, W) input with H and W multiples of {DNET_DIVISOR}, got {tuple(x.shape)}"
            )
        skips: list[Tensor] = []
        h = self.layer1(x)
        for down in (self.layer2, self.layer3, self.layer4, self.layer5, self.layer6, self.layer7, self.layer8):
            h = F.leaky_relu(h, ENCODER_SLOPE)
            skips.append(h)
            h = down(h)
        d = self.dlayer8(h)
        for up, skip in zip(
            (self.dlayer7, self.dlayer6, self.dlayer5, self.dlayer4, self.dlayer3, self.dlayer2, self.dlayer1),
            reversed(skips),
        ):
            d = up(torch.cat([d, skip], dim=1))
        d = self.add_transpose_bn_1(self.add_transpose_conv_1(F.relu(d)))
        d = self.add_transpose_bn_2(self.add_transpose_conv_2(F.relu(d)))
        return full_precision(self.add_transpose_conv_3, F.relu(d))

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`dense_depth`."""
        return self.dense_depth(x)
