"""F-Net: the fine stage, fusing the dense depth with the colour image at three scales."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from df2net.model.blocks import FusionWidths, conv1x1, conv3x3, conv_chain, full_precision, fuse_depth_colour, leaky, upsample_to
from df2net.model.relief import input_mask


class FNet(nn.Module):
    """The fine stage: ``(depth (B, 1, H, W), colour (B, 3, H, W)) -> depth (B, 1, H, W)``.

    F-Net returns a **full depth map**, not a residual: its last layer is a ``tanh``, so the
    output lies in [-1, 1] network units, and in the released chain nothing is added to it (it is
    the depth input of Fr-Net). H and W must be multiples of 4.

    Layout (``nf`` = ``channels``; widths from :class:`~df2net.model.blocks.FusionWidths`):

    - full scale: depth and colour branches (``conv1_d``, ``conv1_c``), fused by ``conv2``; the
      hypercolumn ``[branches, conv2]`` has ``nf/2`` channels;
    - 1/2 scale (max pool): ``conv3``, ``conv4``; hypercolumn ``[conv3, conv4]`` of ``nf``;
    - 1/4 scale (max pool): ``conv5`` .. ``conv7``;
    - head at full scale over ``[conv2, up(conv4), up(conv7)]`` (``7 nf / 4`` channels, bilinear
      upsampling): 1x1 ``conv8``, ``conv9``, ``out``, then ``tanh``.

    With ``level_ref`` (``ModelConfig.fine_level_ref``) it reads the depth moved to that level
    over the face and moves its output back: ``F(depth + c) = F(depth) + c``.
    """

    def __init__(self, channels: int = 64, min_tail: int = 1, level_ref: float | None = None) -> None:
        super().__init__()
        w = FusionWidths(channels, min_tail)
        self.widths = w
        self.level_ref = level_ref
        self.conv1_d = conv3x3(1, w.branch)
        self.conv1_c = conv3x3(3, w.branch)
        self.conv2 = conv3x3(w.fused, w.fused)
        self.conv3 = conv3x3(w.hyper1, w.middle)
        self.conv4 = conv3x3(w.middle, w.middle)
        self.conv5 = conv3x3(w.hyper2, w.deep)
        self.conv6 = conv3x3(w.deep, w.deep)
        self.conv7 = conv3x3(w.deep, w.deep)
        self.conv8 = conv1x1(w.fused + w.middle + w.deep, w.head)
        self.conv9 = conv1x1(w.head, w.tail)
        self.out = conv1x1(w.tail, 1)

    def forward(self, depth: Tensor, colour: Tensor) -> Tensor:
        """Fine depth ``(B, 1, H, W)`` from ``depth (B, 1, H, W)`` and ``colour (B, 3, H, W)``: in
        [-1, 1], or with ``level_ref`` that moved by the input's level (see :meth:`level_shift`)."""
        if self.level_ref is None:
            return self._fine(depth, colour)
        shift = self.level_shift(depth, colour)
        return self._fine(depth - shift, colour) + shift

    def level_shift(self, depth: Tensor, colour: Tensor) -> Tensor:
        """``(B, 1, 1, 1)``: the mean of ``depth`` over the face (the masked colour crop's mask)
        minus ``level_ref``: what F-Net takes off its input and puts back on its output."""
        mask = input_mask(colour)
        mean = (depth * mask).sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        return mean - float(self.level_ref)

    def _fine(self, depth: Tensor, colour: Tensor) -> Tensor:
        hyper1 = fuse_depth_colour(depth, colour, self.conv1_d, self.conv1_c, self.conv2)
        conv2 = hyper1[:, self.widths.fused :]
        conv3 = leaky(self.conv3(F.max_pool2d(hyper1, 2)))
        conv4 = leaky(self.conv4(conv3))
        hyper2 = torch.cat([conv3, conv4], dim=1)
        conv7 = conv_chain(F.max_pool2d(hyper2, 2), (self.conv5, self.conv6, self.conv7))
        features = torch.cat([conv2, upsample_to(conv4, conv2), upsample_to(conv7, conv2)], dim=1)
        head = conv_chain(features, (self.conv8, self.conv9))
        return torch.tanh(full_precision(self.out, head))
