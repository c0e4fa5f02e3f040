"""Periodic actions around the training loop, one class a job (after detectron2's ``engine/hooks.py``).

:class:`df2net.train.loop.Trainer` sets itself as each hook's ``trainer``, then calls
:meth:`Hook.before_train` once, :meth:`Hook.after_step` after every optimiser step, and
:meth:`Hook.after_train` once at the end, also when the loop fails. Hooks run on every rank, in
order; what the ranks must do together (averaging the losses, a checkpoint) they all do, and
files are written by rank 0 only.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from df2net.io import write_text_atomic
from df2net.model import ModelConfig
from df2net.train import distributed as dist_utils
from df2net.train.config import TrainConfig
from df2net.train.plots import plot_history
from df2net.train.sheets import sample_sheet, write_sheet

__all__ = ["Hook", "LevelDrift", "LossLog", "PeriodicCheckpointer", "ProgressBar", "SampleSheets", "TrainerState"]


class TrainerState(Protocol):
    """What hooks use of the trainer."""

    config: TrainConfig
    info: dist_utils.DistInfo
    stage: str
    #: Optimiser steps done.
    step: int
    run_dir: Path
    model_config: ModelConfig
    #: Side of the grid the stage trains on.
    side: int
    optimizer: torch.optim.Optimizer
    #: Logged loss means, one entry per log interval (saved with every checkpoint).
    history: list[dict[str, float]]
    #: The last step's batch, as the loss saw it (patches cut, twins appended).
    last_batch: dict[str, Tensor]
    #: A TensorBoard ``SummaryWriter`` on rank 0, else None.
    writer: Any

    @property
    def done(self) -> bool:
        """Whether the step just taken is the last (all steps done, or the time limit reached)."""

    def save_checkpoint(self) -> Path | None:
        """Write the run's checkpoint (every rank calls it)."""


class Hook:
    """A periodic action; subclasses override the calls they need (these do nothing)."""

    trainer: TrainerState

    def before_train(self) -> None:
        """Once, before the first step."""

    def after_step(self, values: dict[str, float], pred: dict[str, Tensor]) -> None:
        """After each optimiser step: its loss terms and its (detached) predictions."""

    def after_train(self) -> None:
        """Once, after the last step or when the loop fails."""


class ProgressBar(Hook):
    """A progress bar of the steps on standard error (rank 0), with the last loss."""

    def before_train(self) -> None:
        from tqdm import tqdm

        t = self.trainer
        self.bar = tqdm(
            total=t.config.steps,
            initial=t.step,
            desc=f"train {t.stage}",
            unit="step",
            disable=not t.info.is_main,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def after_step(self, values: dict[str, float], pred: dict[str, Tensor]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{values['total']:.4f}", refresh=False)

    def after_train(self) -> None:
        self.bar.close()


class LossLog(Hook):
    """Every ``every`` steps and at the last, the loss means since the previous entry.

    Averaged across ranks and appended to the trainer's history with the learning rate and the
    seconds per step (hooks included); rank 0 also writes them to TensorBoard,
    ``RUN/history.json`` and ``RUN/loss_curve.png``.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0
        self.t_interval = 0.0

    def before_train(self) -> None:
        self.t_interval = time.perf_counter()

    def after_step(self, values: dict[str, float], pred: dict[str, Tensor]) -> None:
        t = self.trainer
        for k, v in values.items():
            self.sums[k] += v
        self.count += 1
        if t.step % self.every == 0 or t.done:
            means = dist_utils.mean_across({k: v / self.count for k, v in self.sums.items()}, t.info)
            self._write(means, (time.perf_counter() - self.t_interval) / self.count)
            self.sums.clear()
            self.count = 0
            self.t_interval = time.perf_counter()

    def _write(self, means: dict[str, float], per_step: float) -> None:
        t = self.trainer
        entry = {"step": float(t.step), "lr": float(t.optimizer.param_groups[0]["lr"]), "s_per_step": per_step}
        entry.update(means)
        t.history.append(entry)
        if not t.info.is_main:
            return
        if t.writer is not None:
            for k, v in means.items():
                t.writer.add_scalar(f"loss/{k}", v, t.step)
            t.writer.add_scalar("lr", entry["lr"], t.step)
            t.writer.add_scalar("s_per_step", per_step, t.step)
            t.writer.flush()
        write_text_atomic(t.run_dir / "history.json", json.dumps(t.history, indent=1) + "\n")
        plot_history(t.history, t.run_dir / "loss_curve.png", title=f"{t.stage} stage ({t.model_config.name})")


class SampleSheets(Hook):
    """Every ``every`` steps and at the last (rank 0): ``RUN/samples/step_N.png`` and TensorBoard.

    The sheet (:func:`df2net.train.sheets.sample_sheet`) shows the step's batch and predictions.
    """

    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self, values: dict[str, float], pred: dict[str, Tensor]) -> None:
        t = self.trainer
        if not t.info.is_main or not (t.step % self.every == 0 or t.done):
            return
        sheet = sample_sheet(t.last_batch, pred, t.stage, t.model_config, grid=t.side)
        write_sheet(t.run_dir / "samples" / f"step_{t.step:08d}.png", sheet)
        if t.writer is not None:
            t.writer.add_image("samples", sheet, t.step, dataformats="HWC")


class LevelDrift(Hook):
    """Warns once when D-Net's output level moves more than ``limit`` network units from where
    the run (or its resume) began.

    The level is ``values["level"]``, the masked mean of the dense stage's depth; where it began is
    the mean of the first ``window`` steps, where it is the mean of the last ``window``. D-Net's
    losses compare depth up to an offset, so nothing holds the level, but F-Net reads D's depth as
    it is: after such a drift F must be trained on this D before the two are chained (recipe
    step 18: +0.2 units under bf16 broke the chain).
    """

    def __init__(self, limit: float = 0.05, window: int = 20) -> None:
        self.limit = limit
        self.window = window
        self.first: list[float] = []
        self.recent: deque[float] = deque(maxlen=window)
        self.warned = False

    def after_step(self, values: dict[str, float], pred: dict[str, Tensor]) -> None:
        level = values.get("level")
        if level is None or self.warned:
            return
        if len(self.first) < self.window:
            self.first.append(level)
            return
        self.recent.append(level)
        if len(self.recent) < self.window:
            return
        drift = (sum(self.recent) - sum(self.first)) / self.window
        if abs(drift) > self.limit:
            self.warned = True
            if self.trainer.info.is_main:
                warnings.warn(
                    f"train {self.trainer.stage}: D-Net's output level moved {drift:+.3f} network units since the run "
                    "began (its losses ignore the level, F-Net reads it): train F on this D before chaining them",
                    stacklevel=2,
                )


class PeriodicCheckpointer(Hook):
    """Every ``every`` steps and at the last: the trainer's checkpoint (every rank takes part)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self, values: dict[str, float], pred: dict[str, Tensor]) -> None:
        if self.trainer.step % self.every == 0 or self.trainer.done:
            self.trainer.save_checkpoint()
