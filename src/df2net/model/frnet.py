"""Fr-Net: the finer stage, a multi-resolution hypercolumn network that adds facial detail."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from df2net.model.blocks import FusionWidths, conv1x1, conv3x3, conv_chain, fuse_depth_colour, leaky, upsample_to


class FinerScales(NamedTuple):
    """The three Fr-Net outputs, each ``(B, 1, h, w)`` in [-1, 1]: at 1/4, 1/2 and full size."""

    quarter: Tensor
    half: Tensor
    full: Tensor


class FrNet(nn.Module):
    """The finer stage: ``(depth (B, 1, H, W), colour (B, 3, H, W)) -> detail (B, 1, H, W)``.

    Three stages, each ending in a 1x1 head (``conv8``, ``conv9``, ``out``) and a ``tanh``:

    1. over the full-size depth and colour (branches and ``conv2`` at full size, ``conv3``,
       ``conv4`` at 1/2, ``conv5`` .. ``conv7`` at 1/4) -> an output at **1/4** size;
    2. over that output and the colour average-pooled by 4, fused at 1/4, upsampled and joined to
       stage 1's half-size hypercolumn -> ``conv5`` .. ``conv7`` at 1/2 -> an output at **1/2**;
    3. over that output and the colour average-pooled by 2, fused at 1/2, upsampled and joined to
       stage 1's full-size hypercolumn -> ``conv5`` .. ``conv7`` at full size -> the **full** output.

    The released chain adds the full output, times a gain, to a depth (see
    :class:`~df2net.model.df2net.DF2Net`), so it acts as a detail residual. H and W must be
    multiples of 4.

    ``conv3_stage2``, ``conv4_stage2``, ``conv3_stage3`` and ``conv4_stage3`` exist in the released
    checkpoint but its forward pass never uses them. We keep them so that checkpoint loads
    strictly, and freeze them (``requires_grad=False``) so optimisers and DDP ignore them.
    """

    def __init__(self, channels: int = 64, min_tail: int = 1) -> None:
        super().__init__()
        w = FusionWidths(channels, min_tail)
        self.widths = w
        head_in = w.deep
        # Stage 1 (full size in, 1/4 size out).
        self.conv1_d_stage1 = conv3x3(1, w.branch)
        self.conv1_c_stage1 = conv3x3(3, w.branch)
        self.conv2_stage1 = conv3x3(w.fused, w.fused)
        self.conv3_stage1 = conv3x3(w.hyper1, w.middle)
        self.conv4_stage1 = conv3x3(w.middle, w.middle)
        self.conv5_stage1 = conv3x3(w.hyper2, w.deep)
        self.conv6_stage1 = conv3x3(w.deep, w.deep)
        self.conv7_stage1 = conv3x3(w.deep, w.deep)
        self.conv8_stage1 = conv1x1(head_in, w.head)
        self.conv9_stage1 = conv1x1(w.head, w.tail)
        self.out_stage1 = conv1x1(w.tail, 1)
        # Stage 2 (1/4 size in, 1/2 size out).
        self.conv1_d_stage2 = conv3x3(1, w.branch)
        self.conv1_c_stage2 = conv3x3(3, w.branch)
        self.conv2_stage2 = conv3x3(w.fused, w.fused)
        self.conv3_stage2 = conv3x3(w.hyper1, w.middle)  # unused (see class docstring)
        self.conv4_stage2 = conv3x3(w.middle, w.middle)  # unused
        self.conv5_stage2 = conv3x3(w.hyper1 + w.hyper2, w.deep)
        self.conv6_stage2 = conv3x3(w.deep, w.deep)
        self.conv7_stage2 = conv3x3(w.deep, w.deep)
        self.conv8_stage2 = conv1x1(head_in, w.head)
        self.conv9_stage2 = conv1x1(w.head, w.tail)
        self.out_stage2 = conv1x1(w.tail, 1)
        # Stage 3 (1/2 size in, full size out).
        self.conv1_d_stage3 = conv3x3(1, w.branch)
        self.conv1_c_stage3 = conv3x3(3, w.branch)
        self.conv2_stage3 = conv3x3(w.fused, w.fused)
        self.conv3_stage3 = conv3x3(w.hyper1, w.middle)  # unused
        self.conv4_stage3 = conv3x3(w.middle, w.middle)  # unused
        self.conv5_stage3 = conv3x3(w.hyper1 + w.hyper1, w.deep)
        self.conv6_stage3 = conv3x3(w.deep, w.deep)
        self.conv7_stage3 = conv3x3(w.deep, w.deep)
        self.conv8_stage3 = conv1x1(head_in, w.head)
        self.conv9_stage3 = conv1x1(w.head, w.tail)
        self.out_stage3 = conv1x1(w.tail, 1)
        for unused in (self.conv3_stage2, self.conv4_stage2, self.conv3_stage3, self.conv4_stage3):
            unused.requires_grad_(False)

    def forward_scales(self, depth: Tensor, colour: Tensor) -> FinerScales:
        """All three stage outputs for ``depth (B, 1, H, W)`` and ``colour (B, 3, H, W)``."""
        if depth.shape[-1] % 4 or depth.shape[-2] % 4:
            raise ValueError(f"Fr-Net needs H and W multiples of 4, got {tuple(depth.shape)}")
        # Stage 1.
        hyper1 = fuse_depth_colour(depth, colour, self.conv1_d_stage1, self.conv1_c_stage1, self.conv2_stage1)
        conv3 = leaky(self.conv3_stage1(F.max_pool2d(hyper1, 2)))
        conv4 = leaky(self.conv4_stage1(conv3))
        hyper2 = torch.cat([conv3, conv4], dim=1)
        x = conv_chain(
            F.max_pool2d(hyper2, 2),
            (self.conv5_stage1, self.conv6_stage1, self.conv7_stage1, self.conv8_stage1, self.conv9_stage1),
        )
        quarter = torch.tanh(self.out_stage1(x))
        # Stage 2.
        h = fuse_depth_colour(
            quarter, F.avg_pool2d(colour, 4), self.conv1_d_stage2, self.conv1_c_stage2, self.conv2_stage2
        )
        x = conv_chain(
            torch.cat([upsample_to(h, hyper2), hyper2], dim=1),
            (self.conv5_stage2, self.conv6_stage2, self.conv7_stage2, self.conv8_stage2, self.conv9_stage2),
        )
        half = torch.tanh(self.out_stage2(x))
        # Stage 3.
        h = fuse_depth_colour(
            half, F.avg_pool2d(colour, 2), self.conv1_d_stage3, self.conv1_c_stage3, self.conv2_stage3
        )
        x = conv_chain(
            torch.cat([upsample_to(h, hyper1), hyper1], dim=1),
            (self.conv5_stage3, self.conv6_stage3, self.conv7_stage3, self.conv8_stage3, self.conv9_stage3),
        )
        full = torch.tanh(self.out_stage3(x))
        return FinerScales(quarter, half, full)

    @torch.no_grad()
    def zero_detail(self) -> None:
        """Zero the last layer (``out_stage3``), so the full output is exactly 0 until trained."""
        self.out_stage3.weight.zero_()
        self.out_stage3.bias.zero_()

    def forward(self, depth: Tensor, colour: Tensor) -> Tensor:
        """The full-size output ``(B, 1, H, W)`` in [-1, 1] (the last of :meth:`forward_scales`)."""
        return self.forward_scales(depth, colour).full
