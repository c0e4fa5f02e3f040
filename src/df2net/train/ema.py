"""An exponential moving average of a model's weights, kept beside the training weights.

Averaging the last thousands of optimiser steps' weights removes most of the step-to-step noise
of Adam at a fixed learning rate; the average usually scores better than the last step's weights
and never costs a forward pass. ``TrainConfig.ema_decay`` turns it on; the trainer updates it
after every optimiser step, keeps it in the checkpoints and exports it as the run's weights.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """``avg = d * avg + (1 - d) * w`` over every floating-point tensor of a module's state.

    ``d`` is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so a fresh average follows
    the weights closely at first instead of holding on to where it started. Buffers (batch-norm
    statistics) are averaged like parameters; integer tensors are copied.
    """

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                      for k, v in module.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next update uses."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """Move the average towards ``module``'s current weights."""
        d = self.current_decay()
        for key, value in module.state_dict().items():
            avg = self.state[key]
            if avg.is_floating_point():
                avg.mul_(d).add_(value.detach().float(), alpha=1.0 - d)
            else:
                avg.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Tensors and primitives only (for ``torch.load(weights_only=True)``)."""
        return {"decay": self.decay, "updates": self.updates, "state": {k: v.cpu() for k, v in self.state.items()}}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s content (the decay stays the configured one)."""
        missing = set(self.state) - set(saved["state"])
        if missing:
            raise ValueError(f"the saved weight average lacks {len(missing)} tensors, e.g. {sorted(missing)[0]}")
        for key, value in saved["state"].items():
            if key in self.state:
                self.state[key].copy_(value)
        self.updates = int(saved["updates"])

    def copy_to(self, module: torch.nn.Module) -> None:
        """Load the average into ``module`` (in each tensor's own dtype)."""
        target = module.state_dict()
        module.load_state_dict({k: v.to(target[k].dtype) for k, v in self.state.items()}, strict=True)
