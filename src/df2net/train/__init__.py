"""Training df2net: configuration, dataset reading, augmentation, losses, stages, the loop and its
hooks (logs, sample sheets, plots, checkpoints), DDP; and the relief Fr-Net's own trainer.

``train(TrainConfig(...))`` runs one stage and returns its exported weights; ``df2net train`` is
the command-line shell around it. Imports are lazy so that the CLI stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["AugmentConfig", "DataSource", "LossConfig", "TrainConfig", "Trainer", "train"]

if TYPE_CHECKING:  # pragma: no cover
    from df2net.train.config import AugmentConfig, DataSource, LossConfig, TrainConfig
    from df2net.train.loop import Trainer, train


def __getattr__(name: str) -> Any:
    if name in ("TrainConfig", "DataSource", "LossConfig", "AugmentConfig"):
        from df2net.train import config

        return getattr(config, name)
    if name in ("train", "Trainer"):
        from df2net.train import loop

        return getattr(loop, name)
    raise AttributeError(name)
