"""Inference-only rewrites of a trained :class:`~df2net.model.df2net.DF2Net` that keep its output.

:func:`fuse_for_inference` folds every batch norm into the convolution or transposed convolution
before it (their running statistics are constants at inference), drops the dropout layers (no-ops
in eval mode) and stores the weights channels-last, the layout oneDNN runs fastest on a CPU. The
result computes the same depths to float rounding (about 1e-6 relative), in fewer operations, but
it can no longer be trained or saved as df2net weights: its state dict has other keys.

:func:`set_inference_threads` is the one place df2net sets PyTorch's thread count, and
:func:`keep_freed_memory` stops the allocator from handing a forward pass's memory back to the
system only to fault it in again on the next one.
"""

from __future__ import annotations

import copy
import os

import torch
from torch import nn

from df2net.model.df2net import DF2Net

__all__ = [
    "fold_batch_norm",
    "fuse_for_inference",
    "keep_freed_memory",
    "physical_cores",
    "set_inference_threads",
]


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


def fuse_for_inference(model: DF2Net, *, channels_last: bool = True) -> DF2Net:
    """An eval-only copy of ``model`` with batch norms folded into the convolutions before them.

    Every ``BatchNorm2d`` that directly follows a ``Conv2d`` / ``ConvTranspose2d`` (in a
    ``Sequential``, or as D-Net's ``add_transpose_conv_i`` / ``add_transpose_bn_i`` pairs) is folded
    into it and replaced by ``nn.Identity``; ``Dropout`` layers become ``nn.Identity`` too. With
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


def physical_cores() -> int:
    """The number of physical CPU cores this process may use (hyper-threads not counted).

    Read from ``/sys`` on Linux (unique ``(package, core)`` pairs among the allowed CPUs); falls
    back to the allowed CPU count elsewhere.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as p, open(f"{base}/core_id") as c:
                cores.add((p.read().strip(), c.read().strip()))
        except OSError:
            return max(1, len(allowed))
    return max(1, len(cores))


#: glibc ``mallopt`` parameters: the size above which ``malloc`` maps fresh pages, and the free
#: space at the top of the heap above which ``free`` returns it to the system.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """Let this process reuse the memory of freed tensors instead of giving it back (glibc only).

    PyTorch's CPU allocator is ``malloc``: by default glibc maps each large block (a 16-channel
    512x512 activation is 16 MiB) with fresh pages and unmaps it when freed, so every forward pass
    page-faults its whole working set in again: about 11,000 faults and 40 % of the time of the
    optimised "cpu" network on a 2-core VM (``benchmarks/README.md``). Raising ``M_MMAP_THRESHOLD``
    to its maximum (32 MiB) and ``M_TRIM_THRESHOLD`` to 1 GiB keeps those blocks in the heap; the
    process's memory then stays at its peak instead of falling back after each photo. Called once
    per process by :func:`df2net.backends.make_backend`; returns whether it took effect.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    _MALLOC_TUNED = ok
    return ok


_THREADS_SET = False


def set_inference_threads(threads: int | None = None) -> int:
    """Set PyTorch's intra-op threads once per process: ``threads``, or the physical cores.

    Later calls without ``threads`` change nothing (a user's or an earlier caller's choice
    stands); ``OMP_NUM_THREADS`` in the environment, when set, wins over the default. Returns the
    thread count in force.
    """
    global _THREADS_SET
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
        _THREADS_SET = True
    elif not _THREADS_SET:
        if not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(physical_cores())
        _THREADS_SET = True
    return torch.get_num_threads()
