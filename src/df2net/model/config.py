"""The network's configuration: :class:`ModelConfig` and the registry of named configs.

Plain data, no PyTorch: reading a weights file's config (:func:`df2net.model.weights.read_weights`)
and running an exported network (ONNX Runtime) need it without the network's modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from df2net.config import CROP_SIZE

#: D-Net halves the resolution this many times, so its input sides must be multiples of 2**8.
DNET_DEPTH: int = 8
DNET_DIVISOR: int = 2**DNET_DEPTH

#: The relief network's modes (see :mod:`df2net.model.relief`).
RELIEF_MODES = ("band", "gate", "shade")

FinerBase = Literal["dense", "fine"]
FinerArch = Literal["hypercolumn", "relief"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the shape and the output units of a :class:`DF2Net`.

    Attributes:
        name: registry name, saved with the weights.
        dense_channels: D-Net base width ``nf`` (64 in the paper); any even number.
        fine_channels: F-Net width (64 in the paper); a multiple of 16.
        finer_channels: Fr-Net width (64 in the paper); a multiple of 16.
        fusion_tail_min: the fewest channels of F-Net's and Fr-Net's last hidden layer
            (:class:`~df2net.model.blocks.FusionWidths`); 1 is the released ``nf / 16`` rule.
        input_size: side of the square RGB input, and of every output stage.
        dense_size: side at which D-Net and F-Net run. When smaller than ``input_size`` the input
            is area-downsampled for them and their depths are bilinearly upsampled back to
            ``input_size`` before Fr-Net, which always runs at ``input_size``. A multiple of 256.
        dense_flip_average: D-Net's depth is the mean of its depth of the input and the mirrored
            depth of the mirrored input (test-time flip averaging, built into the network: it
            halves D-Net's left/right errors for twice its small cost). Off in the released chain.
        fine_flip_average: the same for F-Net at inference: the mean of its depth of (input, D's
            depth) and the mirrored depth of the mirrored pair. Training F-Net runs it plainly.
        finer_base: what Fr-Net's detail is added to: ``"dense"`` (the released network) or
            ``"fine"``.
        finer_gain: the detail's gain: ``finer = base + finer_gain * FrNet(fine, x)``.
        depth_scale, depth_offset: network units to depth pixels at ``input_size``:
            ``pixels = out * depth_scale + depth_offset``.
        finer_arch: ``"hypercolumn"``, the released Fr-Net (:class:`~df2net.model.frnet.FrNet`),
            or ``"relief"``, the high-pass relief U-Net (:class:`~df2net.model.relief.ReliefNet`):
            ``finer = fine + hp(ReliefNet(fine, x))``, its relief in pixels (``finer_gain`` and
            ``finer_channels`` then unused; ``finer_base`` must be ``"fine"``).
        relief_channels: the relief U-Net's widths, one per level.
        relief_sigma: its high-pass scale in pixels at ``input_size``.
        relief_gain: a fixed factor on its output (calibrated on validation renders).
        relief_mode: what the relief U-Net sees and does with F-Net's detail band
            (:data:`~df2net.model.relief.RELIEF_MODES`: ``"band"`` or ``"gate"``).
        fine_level_ref: None (F-Net reads D-Net's depth as it is: the released chain), or a level
            in network units: F-Net then reads D-Net's depth moved so that its mean over the face
            is this level, and moves its own output back by the same amount, so the chain no
            longer depends on D-Net's level, which D-Net's losses (depth up to an offset) leave
            free (recipe step 18: a drift of 0.2 units broke the chain). The shipped F-Nets were
            trained on D-Nets at about -0.49.
    """

    name: str
    dense_channels: int = 64
    fine_channels: int = 64
    finer_channels: int = 64
    fusion_tail_min: int = 1
    input_size: int = CROP_SIZE
    dense_size: int = CROP_SIZE
    dense_flip_average: bool = False
    fine_flip_average: bool = False
    finer_base: FinerBase = "dense"
    finer_gain: float = 3.0
    depth_scale: float = 127.5
    depth_offset: float = 127.5
    finer_arch: FinerArch = "hypercolumn"
    relief_channels: tuple[int, ...] = (16, 32, 64)
    relief_sigma: float = 4.0
    relief_gain: float = 1.0
    relief_mode: str = "gate"
    fine_level_ref: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "relief_channels", tuple(int(c) for c in self.relief_channels))
        problems = []
        if self.finer_arch not in ("hypercolumn", "relief"):
            problems.append(f"finer_arch must be 'hypercolumn' or 'relief', got {self.finer_arch!r}")
        if self.finer_arch == "relief":
            if self.finer_base != "fine":
                problems.append("the relief Fr-Net adds to the fine depth: finer_base must be 'fine'")
            if len(self.relief_channels) < 2 or min(self.relief_channels) < 1:
                problems.append(f"relief_channels needs two or more positive widths, got {self.relief_channels}")
            if self.input_size % (2 ** (len(self.relief_channels) - 1)):
                problems.append("input_size must be a multiple of 2 ** (levels - 1) of the relief U-Net")
            if self.relief_sigma <= 0:
                problems.append("relief_sigma must be > 0")
            if self.relief_mode not in RELIEF_MODES:
                problems.append(f"relief_mode must be one of {RELIEF_MODES}, got {self.relief_mode!r}")
        if self.dense_channels < 2 or self.dense_channels % 2:
            problems.append(f"dense_channels must be an even number >= 2, got {self.dense_channels}")
        for field_name in ("fine_channels", "finer_channels"):
            value = getattr(self, field_name)
            if value <= 0 or value % 16:
                problems.append(f"{field_name} must be a positive multiple of 16, got {value}")
        if self.fusion_tail_min < 1:
            problems.append(f"fusion_tail_min must be >= 1, got {self.fusion_tail_min}")
        if self.dense_size <= 0 or self.dense_size % DNET_DIVISOR:
            problems.append(f"dense_size must be a positive multiple of {DNET_DIVISOR}, got {self.dense_size}")
        if self.input_size < self.dense_size or self.input_size % 4:
            problems.append(f"input_size must be a multiple of 4 and >= dense_size, got {self.input_size}")
        if self.finer_base not in ("dense", "fine"):
            problems.append(f"finer_base must be 'dense' or 'fine', got {self.finer_base!r}")
        if self.depth_scale == 0:
            problems.append("depth_scale must not be 0")
        if problems:
            raise ValueError(f"invalid ModelConfig {self.name!r}: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config from :func:`dataclasses.asdict` output; unknown or missing keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {', '.join(unknown)}")
        if "name" not in data:
            raise ValueError("ModelConfig needs a 'name'")
        return cls(**dict(data))


#: The named configurations. ``"original"`` matches the released DF2Net checkpoint exactly
#: (55.1M parameters). ``"cpu"`` is a light network of the same layout for CPU inference and
#: training from scratch (2.67M parameters, about 0.16 s per 512 crop on 2 CPU cores): D-Net of
#: width 14 (the width that keeps it under 3M parameters) and F-Net of width 32 both run at 256,
#: where they are cheap; Fr-Net, the only stage at 512, has width 16; its detail is added to the
#: fine depth, so the chain is dense -> fine -> fine + detail. Both fusion networks keep at least
#: 4 channels before their output (``fusion_tail_min``), and D-Net's depth is flip-averaged.
MODEL_CONFIGS: dict[str, ModelConfig] = {
    "original": ModelConfig(name="original"),
    "cpu": ModelConfig(
        name="cpu",
        dense_channels=14,
        fine_channels=32,
        finer_channels=16,
        fusion_tail_min=4,
        dense_size=256,
        dense_flip_average=True,
        finer_base="fine",
        # Fr-Net's tanh spans ±7.7 px of depth: wrinkles are about a pixel deep, and the released
        # gain of 3 units (765 px here) made every optimiser step move them by more than that.
        finer_gain=0.03,
    ),
}
