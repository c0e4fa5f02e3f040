"""Widen D-Net without changing what it computes, so a trained D-Net can grow and keep training.

The shipped D-Net is narrow (``dense_channels`` 14 against the paper's 64) and scores the same on
its own training renders as on held-out ones: it lacks capacity, not data. Training a wider one
from scratch would throw away every run so far; :func:`widen_dense` instead builds the wider
network with the trained one inside it:

- every trained channel keeps its place at the start of its group (the decoder's inputs are two
  groups, the previous step's output and the encoder's skip, so a trained skip channel moves to
  the start of the wider skip half);
- the new channels get the wider network's fresh initial weights on their way in, and **zero
  weights on their way out** (every layer that reads them), so they add nothing yet: the wider
  D-Net's depth equals the narrow one's exactly (batch norm in training mode included, since the
  trained channels keep their own statistics) and training starts where the narrow one stopped;
- F-Net and Fr-Net are copied unchanged (they read D-Net's one-channel depth).

The zero outgoing weights receive gradients at once (the new channels are active), so the new
channels start learning on the first step.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from df2net.model.df2net import DF2Net, build_model, stage_of

__all__ = ["widen_dense", "widen_weights_file"]


def _concat_input(name: str) -> bool:
    """Whether module ``name`` of D-Net reads ``cat([previous output, skip])`` (two equal halves)."""
    return name.startswith("dlayer") and not name.startswith("dlayer8")


def _channel_map(old: int, new: int, halves: bool) -> Tensor:
    """Where each of ``old`` channels sits among ``new``: a prefix, or a prefix of each half."""
    if not halves:
        return torch.arange(old)
    if old % 2 or new % 2:
        raise ValueError(f"a concatenated input of {old} -> {new} channels must split into two halves")
    h_old, h_new = old // 2, new // 2
    return torch.cat([torch.arange(h_old), h_new + torch.arange(h_old)])


@torch.no_grad()
def _widen_module(name: str, src: nn.Module, dst: nn.Module) -> None:
    if isinstance(src, nn.BatchNorm2d):
        idx = _channel_map(src.num_features, dst.num_features, False)
        for key in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst, key)[idx] = getattr(src, key)
        dst.num_batches_tracked.copy_(src.num_batches_tracked)
        return
    if not isinstance(src, (nn.Conv2d, nn.ConvTranspose2d)):
        raise TypeError(f"D-Net module {name} ({type(src).__name__}) has no widening rule")
    if src.bias is not None:
        raise ValueError(f"D-Net module {name} has a bias: no widening rule")
    in_idx = _channel_map(src.in_channels, dst.in_channels, _concat_input(name))
    out_idx = _channel_map(src.out_channels, dst.out_channels, False)
    # Conv2d weights are (out, in, kh, kw); ConvTranspose2d weights (in, out, kh, kw).
    w = dst.weight if isinstance(dst, nn.Conv2d) else dst.weight.transpose(0, 1)
    s = src.weight if isinstance(src, nn.Conv2d) else src.weight.transpose(0, 1)
    new_inputs = torch.ones(dst.in_channels, dtype=torch.bool)
    new_inputs[in_idx] = False
    w[:, new_inputs] = 0.0  # new channels contribute nothing until trained
    w[out_idx[:, None], in_idx[None, :]] = s


def widen_dense(model: DF2Net, channels: int) -> DF2Net:
    """A copy of ``model`` whose D-Net has ``channels`` base channels and computes the same depth.

    ``channels`` must be even and at least the current width. The returned model's config is
    ``model.config`` with ``dense_channels = channels``; its F-Net and Fr-Net are ``model``'s.
    """
    old = model.config.dense_channels
    if channels < old or channels % 2:
        raise ValueError(f"D-Net can widen from {old} to an even width >= {old}, not {channels}")
    wide = build_model(replace(model.config, dense_channels=channels))
    wide.train(model.training)
    src_modules = dict(model.named_modules())
    for name, dst in wide.named_modules():
        if name and stage_of(name + ".") == "dense" and isinstance(dst, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)):
            _widen_module(name, src_modules[name], dst)
    state = wide.state_dict()
    state.update({k: v for k, v in model.state_dict().items() if stage_of(k) != "dense"})
    wide.load_state_dict(state)
    return wide


def widen_weights_file(source: str | Path, target: str | Path, channels: int) -> Path:
    """Write ``source``'s weights with D-Net widened to ``channels`` (:func:`widen_dense`) to ``target``.

    The file keeps the source's recipe and ``gain_calibration`` and records the widening
    (``metadata["widened"]``), so that stages trained with a wider D-Net can be transplanted into it.
    """
    from df2net.model.weights import kept_metadata, load_weights, save_weights

    loaded = load_weights(source)
    wide = widen_dense(loaded.model, channels)
    widened = {"source": Path(source).name, "dense_channels": [loaded.config.dense_channels, channels]}
    extra = {"widened": widened, **kept_metadata(loaded.metadata)}
    return save_weights(wide.eval(), wide.config, target, recipe=loaded.metadata.get("recipe"), extra=extra)
