"""Inference-only rewrites of a trained :class:`~df2net.model.df2net.DF2Net` that keep its output.

:func:`fuse_for_inference` folds every batch norm into the convolution or transposed convolution
before it (their running statistics are constants at inference), drops the dropout layers (no-ops
in eval mode), turns stride-1 transposed convolutions into the plain convolutions they equal
(ONNX Runtime runs those in its blocked convolution kernels, transposed ones as GEMM + col2im)
and stores the weights channels-last, the layout oneDNN runs fastest on a CPU. The result
computes the same depths to float rounding (about 1e-6 relative), in fewer operations, but it can
no longer be trained or saved as df2net weights: its state dict has other keys.

The thread count and the allocator's settings of inference live in :mod:`df2net.cpu`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from df2net.model.df2net import DF2Net

__all__ = ["fold_batch_norm", "fuse_for_inference", "transposed_as_conv"]


@torch.no_grad()
def fold_batch_norm(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode ``bn`` into ``conv`` in place, so ``conv(x) == bn(conv(x))`` afterwards.

    ``bn(y) = (y - mean) / sqrt(var + eps) * gamma + beta`` is a per-channel affine map
    ``y * s + t``; it scales the conv's output channels (dim 0 of a convolution's weight, dim 1 of
    a transposed convolution's, which is ``(in, out / groups, kh, kw)``) and becomes its bias.
    """
    if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) or conv.groups != 1:
        raise ValueError(f"can only fold batch norm into an ungrouped Conv2d / ConvTranspose2d, not {conv}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
    out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    shape = [1] * conv.weight.ndim
    shape[out_dim] = -1
    conv.weight.mul_(scale.reshape(shape).to(conv.weight.dtype))
    old_bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    conv.bias = nn.Parameter((old_bias * scale + shift).to(conv.weight.dtype), requires_grad=False)


@torch.no_grad()
def transposed_as_conv(tconv: nn.ConvTranspose2d) -> nn.Conv2d | None:
    """The ``Conv2d`` that computes what a stride-1 ``tconv`` does, or None for any other.

    With stride 1 a transposed convolution is the convolution with the kernel flipped in both
    spatial axes, its in and out channels swapped, and padding ``k - 1 - p``.
    """
    ungrouped = tconv.groups == 1 and tconv.dilation == (1, 1) and tconv.output_padding == (0, 0)
    if tconv.stride != (1, 1) or not ungrouped or tconv.padding_mode != "zeros":
        return None
    kh, kw = tconv.kernel_size
    ph, pw = tconv.padding
    if ph > kh - 1 or pw > kw - 1:
        return None
    conv = nn.Conv2d(tconv.in_channels, tconv.out_channels, (kh, kw), padding=(kh - 1 - ph, kw - 1 - pw),
                     bias=tconv.bias is not None)
    conv.weight.copy_(tconv.weight.transpose(0, 1).flip(2, 3))
    if tconv.bias is not None:
        conv.bias.copy_(tconv.bias)
    return conv.to(tconv.weight.dtype)


def fuse_for_inference(model: DF2Net, *, channels_last: bool = True) -> DF2Net:
    """An eval-only copy of ``model`` with batch norms folded into the convolutions before them.

    Every ``BatchNorm2d`` that directly follows a ``Conv2d`` / ``ConvTranspose2d`` (in a
    ``Sequential``, or as D-Net's ``add_transpose_conv_i`` / ``add_transpose_bn_i`` pairs) is folded
    into it and replaced by ``nn.Identity``; ``Dropout`` layers become ``nn.Identity`` too, and
    stride-1 transposed convolutions plain ones (:func:`transposed_as_conv`). With
    ``channels_last`` (for running in PyTorch) the 4-D weights are stored channels-last: feed it
    channels-last input for speed (any layout gives the same result). ``model`` itself is not
    changed.

    The copy returns the same depths as ``model.eval()`` within float rounding; it has no
    gradients and its state dict no longer matches :func:`~df2net.model.df2net.build_model`.
    """
    fused = copy.deepcopy(model).eval()
    for module in list(fused.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
    # D-Net's head keeps its conv / bn pairs as siblings, not in a Sequential.
    for i in (1, 2):
        conv_name, bn_name = f"add_transpose_conv_{i}", f"add_transpose_bn_{i}"
        conv, bn = getattr(fused, conv_name, None), getattr(fused, bn_name, None)
        if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
            fold_batch_norm(conv, bn)
            setattr(fused, bn_name, nn.Identity())
    for module in list(fused.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ConvTranspose2d) and (conv := transposed_as_conv(child)) is not None:
                setattr(module, name, conv)
    leftover = [name for name, m in fused.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if leftover:
        raise ValueError(f"batch norms not preceded by a convolution, cannot fold: {', '.join(leftover)}")
    fused.requires_grad_(False)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    return fused


def _fold_sequential(seq: nn.Sequential) -> None:
    """Fold each conv -> batch-norm pair of ``seq`` and blank its dropouts, in place."""
    names = list(seq._modules)
    for prev_name, name in zip(names, names[1:]):
        prev, module = seq._modules[prev_name], seq._modules[name]
        if isinstance(module, nn.BatchNorm2d) and isinstance(prev, (nn.Conv2d, nn.ConvTranspose2d)):
            fold_batch_norm(prev, module)
            seq._modules[name] = nn.Identity()
    for name, module in list(seq._modules.items()):
        if isinstance(module, nn.modules.dropout._DropoutNd):
            seq._modules[name] = nn.Identity()
