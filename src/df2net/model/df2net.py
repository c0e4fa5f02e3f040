"""The DF2Net chain (dense -> fine -> finer); its configuration lives in :mod:`df2net.model.config`."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from df2net.model.config import DNET_DIVISOR, MODEL_CONFIGS, ModelConfig
from df2net.model.dnet import DNet
from df2net.model.fnet import FNet
from df2net.model.frnet import FrNet
from df2net.model.relief import ReliefNet

__all__ = ["MODEL_CONFIGS", "DF2Net", "DepthStages", "ModelConfig", "build_model"]


#: Parameter-name prefixes of the sub-networks :class:`DF2Net` holds (F-Net and Fr-Net); every other
#: tensor is D-Net's (the original release's top-level names).
STAGE_PREFIXES: dict[str, str] = {"fine": "FNet.", "finer": "FrNet."}


def stage_of(name: str) -> str:
    """The stage (``"dense"``, ``"fine"`` or ``"finer"``) a tensor or parameter of :class:`DF2Net` belongs to."""
    return next((stage for stage, prefix in STAGE_PREFIXES.items() if name.startswith(prefix)), "dense")


class DepthStages(NamedTuple):
    """The depth after each stage, each ``(B, 1, input_size, input_size)`` in network units.

    ``dense`` is D-Net's output; ``fine`` is F-Net's output, itself a full depth map (F-Net ends
    in a ``tanh`` and nothing is added to it); ``finer`` is the final depth,
    ``base + finer_gain * FrNet(fine, x)`` with ``base`` the dense or the fine depth
    (:attr:`ModelConfig.finer_base`). ``dense`` and ``fine`` are upsampled to ``input_size`` when
    D-Net and F-Net run at a smaller ``dense_size``.
    """

    dense: Tensor
    fine: Tensor | None
    finer: Tensor | None


class DF2Net(DNet):
    """The whole network: RGB ``(B, 3, S, S)`` in [-1, 1] -> depth ``(B, 1, S, S)``, network units.

    As in the released code, the top module *is* the D-Net (its layers sit at the top level of
    the state dict) and holds F-Net and Fr-Net as the attributes ``FNet`` and ``FrNet``, so the
    released checkpoint (``module.`` prefix removed) loads strictly into ``build_model("original")``.

    The network is fully convolutional: ``S`` need not be ``config.input_size``, but
    ``S * dense_size / input_size`` must be a multiple of 256 and ``S`` a multiple of 4.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(channels=config.dense_channels)
        self.config = config
        self.FNet = FNet(config.fine_channels, config.fusion_tail_min, config.fine_level_ref)
        if config.finer_arch == "relief":
            self.FrNet: FrNet | ReliefNet = ReliefNet(config.relief_channels, config.relief_sigma, config.relief_gain, config.relief_mode)
        else:
            self.FrNet = FrNet(config.finer_channels, config.fusion_tail_min)

    def forward_stages(self, x: Tensor, until: str = "finer") -> DepthStages:
        """The dense, fine and finer depths of ``x (B, 3, H, W)``, each ``(B, 1, H, W)``.

        ``until`` ("dense", "fine" or "finer") stops after that stage (training one stage need
        not run the later ones); the skipped stages are ``None``.
        """
        if until not in ("dense", "fine", "finer"):
            raise ValueError(f"until must be dense, fine or finer, not {until!r}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DF2Net needs an RGB batch (B, 3, H, W), got {tuple(x.shape)}")
        cfg = self.config
        size = tuple(x.shape[-2:])
        dense_hw = tuple(s * cfg.dense_size // cfg.input_size for s in size)
        if any(d * cfg.input_size != s * cfg.dense_size or d % DNET_DIVISOR for s, d in zip(size, dense_hw)):
            raise ValueError(
                f"input sides {size} do not fit config {cfg.name!r}: scaled by "
                f"{cfg.dense_size}/{cfg.input_size} they must be whole multiples of {DNET_DIVISOR}"
            )
        resized = dense_hw != size
        x_dense = F.interpolate(x, size=dense_hw, mode="area") if resized else x
        dense = self.dense_stage(x_dense)
        if until == "dense":
            if resized:
                dense = F.interpolate(dense, size=size, mode="bilinear", align_corners=False)
            return DepthStages(dense=dense, fine=None, finer=None)
        fine = self.fine_stage(dense, x_dense)
        if resized:
            dense = F.interpolate(dense, size=size, mode="bilinear", align_corners=False)
            fine = F.interpolate(fine, size=size, mode="bilinear", align_corners=False)
        if until == "fine":
            return DepthStages(dense=dense, fine=fine, finer=None)
        if cfg.finer_arch == "relief":
            # The relief is in pixels of this grid; the depths are in network units.
            finer = fine + self.FrNet(fine * cfg.depth_scale, x) / cfg.depth_scale
            return DepthStages(dense=dense, fine=fine, finer=finer)
        base = dense if cfg.finer_base == "dense" else fine
        finer = base + cfg.finer_gain * self.FrNet(fine, x)
        return DepthStages(dense=dense, fine=fine, finer=finer)

    def dense_stage(self, x: Tensor) -> Tensor:
        """D-Net's depth of ``x (B, 3, H, W)`` at D-Net's side, flip-averaged when the config says so."""
        if not self.config.dense_flip_average:
            return self.dense_depth(x)
        both = self.dense_depth(torch.cat([x, x.flip(-1)]))
        return 0.5 * (both[: x.shape[0]] + both[x.shape[0] :].flip(-1))

    def fine_stage(self, dense: Tensor, x: Tensor) -> Tensor:
        """F-Net's depth from D-Net's ``dense`` and the colour ``x`` at D-Net's side, flip-averaged when the config says so."""
        if not self.config.fine_flip_average:
            return self.FNet(dense, x)
        n = x.shape[0]
        both = self.FNet(torch.cat([dense, dense.flip(-1)]), torch.cat([x, x.flip(-1)]))
        return 0.5 * (both[:n] + both[n:].flip(-1))

    def forward(self, x: Tensor) -> Tensor:
        """The final (finer) depth of ``x (B, 3, H, W)``: ``(B, 1, H, W)`` in network units."""
        return self.forward_stages(x).finer

    def to_pixels(self, depth: Tensor) -> Tensor:
        """Network units to depth pixels at ``input_size``: ``depth * depth_scale + depth_offset``."""
        return depth * self.config.depth_scale + self.config.depth_offset


def build_model(config_or_name: ModelConfig | str) -> DF2Net:
    """A freshly initialised :class:`DF2Net` for a :class:`ModelConfig` or a name in :data:`MODEL_CONFIGS`."""
    if isinstance(config_or_name, str):
        try:
            config = MODEL_CONFIGS[config_or_name]
        except KeyError:
            names = ", ".join(sorted(MODEL_CONFIGS))
            raise ValueError(f"unknown model config {config_or_name!r} (known: {names})") from None
    else:
        config = config_or_name
    return DF2Net(config)
