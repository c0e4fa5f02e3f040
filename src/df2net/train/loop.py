"""The training loop: one stage of DF2Net on dataset folders, single-process or under torchrun.

:func:`train` runs a :class:`TrainConfig` and returns the exported weights. :class:`Trainer`
builds the run and keeps the step short (data, forward, loss, backward, optimiser); periodic
work is done by hooks around it (:mod:`df2net.train.hooks`). A run folder holds::

    RUN/config.json            the TrainConfig (what --resume reads back)
    RUN/checkpoints/step_*.pt  model + optimiser + scheduler + step + RNG (tensors and primitives
                               only, loaded with torch.load(weights_only=True)); the last few kept
    RUN/history.json           logged loss averages, one entry per log interval
    RUN/loss_curve.png         the same, plotted (rewritten at every log interval)
    RUN/samples/step_*.png     input | target depth | predicted depth | predicted normals | target normals
    RUN/tb/                    TensorBoard events (when tensorboard is installed)
    RUN/final.safetensors      the weights, with the recipe in their metadata (with
                               ``ema_decay``: their moving average, :mod:`df2net.train.ema`)
    RUN/final_raw.safetensors  with ``ema_decay`` only: the last step's own weights

The stages and what each trains: :mod:`df2net.train.stages`. Chain stages with ``init``: the
weights a previous stage exported.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from df2net.config import CROP_SIZE
from df2net.io import write_text_atomic
from df2net.model import save_weights
from df2net.train import distributed as dist_utils
from df2net.train.checkpoints import (
    checkpoint_files,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from df2net.train.config import CONFIG_FILE, TrainConfig
from df2net.train.datasets import MixedBatchSampler, TrainingSet
from df2net.train.ema import WeightAverage
from df2net.train.hooks import Hook, LevelDrift, LossLog, PeriodicCheckpointer, ProgressBar, SampleSheets
from df2net.train.losses import masked_mean, pair_loss, stage_loss, units_to_grid_pixels
from df2net.train.schedule import warmup_cosine
from df2net.train.stages import (
    StageNet,
    crop_windows,
    initial_model,
    patch_windows,
    set_stage_modes,
    stage_parameters,
    stage_side,
)

FINAL_WEIGHTS = "final.safetensors"
#: With ``ema_decay``: the last step's weights (``FINAL_WEIGHTS`` holds their average).
RAW_WEIGHTS = "final_raw.safetensors"
#: History entries that are not loss terms.
_NOT_TERMS = ("step", "lr", "s_per_step")


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


class Trainer:
    """Runs one :class:`TrainConfig`: build, (resume,) loop with hooks, export.

    Usable piecewise (``Trainer(cfg).run()`` is :func:`train`); ``model`` is the bare
    :class:`DF2Net` being trained, ``step`` the number of optimiser steps done, ``hooks`` the
    periodic work run after each step (progress bar, loss log, sample sheets, checkpoints).
    """

    def __init__(self, config: TrainConfig, resume: bool = False, info: dist_utils.DistInfo | None = None) -> None:
        self.config = config
        self.info = info or dist_utils.setup(config.device)
        self.device = self.info.device
        self.run_dir = Path(config.out)
        self.stage = config.stage
        self._warned: set[str] = set()

        if config.threads:
            torch.set_num_threads(config.threads)
        ckpt_path = latest_checkpoint(self.run_dir) if resume else None
        if not resume and checkpoint_files(self.run_dir):
            raise FileExistsError(
                f"{self.run_dir}: the run folder already holds checkpoints; resume it or choose another output folder"
            )
        ckpt = load_checkpoint(ckpt_path) if ckpt_path else None

        torch.manual_seed(config.seed)
        self.model, self.model_config, self.init_metadata = initial_model(config, ckpt, self._warn)
        if config.zero_detail and ckpt is None:
            self.model.FrNet.zero_detail()
        self.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.params = stage_parameters(self.model, self.stage)
        if not self.params:
            raise ValueError(f"stage {self.stage!r} has no trainable parameters")
        self.train_size = config.train_size or self.model_config.input_size
        self.side = stage_side(self.stage, self.model_config, self.train_size)
        if config.patch_size and config.patch_size > self.side:
            raise ValueError(f"patch_size {config.patch_size} is larger than the training side {self.side}")
        self.last_batch: dict[str, Tensor] = {}

        self.optimizer = torch.optim.Adam(
            self.params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        total, warmup, floor = config.steps, config.warmup_steps, config.min_lr_ratio
        #: Share of ``time_limit_min`` spent (0 without a limit), agreed across ranks.
        self.time_used = 0.0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, warmup, total, floor, self.time_used)
        )
        self.step = 0
        self.wall_s = 0.0
        self.history: list[dict[str, float]] = []
        # Dropout differs between ranks; everything else random is keyed by (seed, step, slot).
        torch.manual_seed(config.seed * 1000 + 1 + self.info.rank)
        if ckpt is not None:
            self._restore(ckpt)
        self.ema = self._weight_average(ckpt)
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config.save(self.run_dir / CONFIG_FILE)

        if config.dropout is not None:
            for module in self.model.modules():
                if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                    module.p = config.dropout
        self.net = dist_utils.wrap(StageNet(self.model, self.stage), self.info)
        set_stage_modes(self.model, self.stage)
        losses = config.losses
        self.dataset = TrainingSet(
            config.data,
            self.side,
            config.augment,
            seed=config.seed,
            cache_bytes=config.cache_mb * 2**20,
            twins=bool(losses.pair or losses.pair_band) and self.stage in ("dense", "fine"),
            regions=losses.region_boost > 0,
        )
        self.writer = self._tensorboard() if self.info.is_main else None
        self.hooks: list[Hook] = [
            ProgressBar(),
            LossLog(config.log_every),
            LevelDrift(),
            SampleSheets(config.sample_every),
            PeriodicCheckpointer(config.checkpoint_every),
        ]
        for hook in self.hooks:
            hook.trainer = self

    # ---------------------------------------------------------------- setup

    def _restore(self, ckpt: dict[str, Any]) -> None:
        saved = ckpt.get("config", {})
        if saved.get("stage", self.stage) != self.stage:
            raise ValueError(f"checkpoint is of stage {saved.get('stage')!r}, not {self.stage!r}")
        self.model.load_state_dict(ckpt["model"], strict=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.step = int(ckpt["step"])
        self.wall_s = float(ckpt.get("wall_s", 0.0))
        self.time_used = self._time_share()
        self.history = [dict(h) for h in ckpt.get("history", [])]
        rngs = ckpt.get("rng", [])
        if self.info.rank < len(rngs):
            set_rng_state(rngs[self.info.rank], self.device)

    def _weight_average(self, ckpt: dict[str, Any] | None) -> WeightAverage | None:
        """The run's moving average of the weights (None without ``ema_decay``), restored if saved."""
        if not self.config.ema_decay:
            return None
        ema = WeightAverage(self.model, self.config.ema_decay)
        if ckpt is not None and "ema" in ckpt:
            ema.load_state_dict(ckpt["ema"])
        elif ckpt is not None:
            self._warn(f"the checkpoint has no weight average: it starts at step {self.step}")
        return ema

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self._warn("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
            return None
        return SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=self.step or None)

    def _warn(self, message: str) -> None:
        if message not in self._warned and self.info.is_main:
            self._warned.add(message)
            warnings.warn(message, stacklevel=3)

    def loader(self) -> torch.utils.data.DataLoader:
        """The batches of the remaining steps, this rank's slice of each."""
        cfg = self.config
        sampler = MixedBatchSampler(
            self.dataset.sizes,
            self.dataset.weights,
            cfg.batch_size,
            steps=cfg.steps,
            seed=cfg.seed,
            start=self.step,
            rank=self.info.rank,
            world_size=self.info.world_size,
        )
        workers = cfg.num_workers
        # Its own generator, so that starting the loader does not draw from the global RNG
        # (dropout's): a resumed run then repeats an uninterrupted one exactly.
        generator = torch.Generator().manual_seed(cfg.seed * 7919 + self.step)
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_worker_init if workers else None,
            prefetch_factor=2 if workers else None,
            generator=generator,
        )

    # ---------------------------------------------------------------- one step

    def _add_twins(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor | None]:
        """The batch with the unmarked twins of up to ``ceil(batch_size * pair_share)`` samples appended.

        Returns the extended batch (twins after the originals, each with its original's targets)
        and the indices of the originals that brought one (None when the run has no pair terms).
        """
        if "input_twin" not in batch:
            return batch, None
        has = torch.nonzero(batch["has_twin"] > 0).flatten()
        idx = has[: math.ceil(self.config.batch_size * self.config.pair_share)]
        out = {}
        for key, value in batch.items():
            if key in ("input_twin", "has_twin"):
                continue
            extra = batch["input_twin"][idx] if key == "input" else value[idx]
            out[key] = torch.cat([value, extra])
        return out, idx

    def _pair_terms(self, pred: dict[str, Tensor], batch: dict[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
        """``pair`` and ``pair_band`` (batch means) between the originals ``idx`` and their appended twins."""
        cfg = self.config.losses
        n = idx.numel()
        out_px = units_to_grid_pixels(pred[self.stage], self.model_config, self.side)
        whole, band = pair_loss(
            out_px[idx],
            out_px[-n:],
            batch["face_mask"][-n:],
            batch["marks_mask"][-n:],
            cfg.pair_sigma_px * self.side / CROP_SIZE,
            cfg.pair_marks_boost,
        )
        return {"pair": whole.mean(), "pair_band": band.mean()}

    def train_step(self, batch: dict[str, Tensor]) -> tuple[dict[str, float], dict[str, Tensor]]:
        """One optimiser step on a batch; returns the loss terms and the (detached) predictions."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        batch, twins = self._add_twins(batch)
        if self.config.channels_last:
            batch["input"] = batch["input"].contiguous(memory_format=torch.channels_last)
        amp = self.config.amp
        windows = None
        if self.config.patch_size:
            rng = np.random.default_rng([self.config.seed, self.step, 7])
            windows = patch_windows(batch["face_mask"].cpu(), self.config.patch_size, rng)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            pred = self.net(batch["input"]) if windows is None else self.net(batch["input"], windows)
        pred = {k: v.float() for k, v in pred.items()}
        if windows is not None:
            batch = {
                k: crop_windows(v, windows, self.config.patch_size) if v.ndim == 4 else v for k, v in batch.items()
            }
        self.last_batch = batch
        total, terms = stage_loss(self.stage, pred, batch, self.model_config, self.config.losses, grid=self.side)
        if twins is not None and twins.numel():
            cfg = self.config.losses
            pair = self._pair_terms(pred, batch, twins)
            total = total + cfg.pair * pair["pair"] + cfg.pair_band * pair["pair_band"]
            terms.update(pair)
        finite = torch.isfinite(total).float()
        if self.info.distributed:  # every rank must agree to step, or DDP would hang
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        self.optimizer.zero_grad(set_to_none=True)
        if finite.item() < 1:
            self._bad_steps = getattr(self, "_bad_steps", 0) + 1
            if self._bad_steps > 10:
                raise FloatingPointError(f"loss not finite for {self._bad_steps} steps in a row (step {self.step})")
            self._warn("non-finite loss: step skipped")
        else:
            self._bad_steps = 0
            total.backward()
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model)
        self.scheduler.step()
        self.step += 1
        values = {k: float(v.detach()) for k, v in terms.items()}
        values["total"] = float(total.detach())
        if self.stage == "dense":  # the level the losses ignore and F-Net reads (hooks.LevelDrift)
            values["level"] = float(masked_mean(pred["dense"].detach(), batch["mask"]).mean())
        return values, {k: v.detach() for k, v in pred.items()}

    # ---------------------------------------------------------------- the loop

    def _time_share(self) -> float:
        """Share of the time budget spent so far (rank 0's clock decides, so ranks agree)."""
        limit = self.config.time_limit_min
        if not limit:
            return 0.0
        share = torch.tensor([self.wall_s / (60.0 * limit)], dtype=torch.float64)
        if self.info.distributed:
            share = share.to(self.device)
            torch.distributed.broadcast(share, src=0)
        return float(share.item())

    def _refresh_lr(self) -> None:
        """Re-apply the schedule at the current step (after ``time_used`` moved on)."""
        sched = self.scheduler
        for group, base, factor in zip(self.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
            group["lr"] = base * factor(sched.last_epoch)

    @property
    def done(self) -> bool:
        """Whether the step just taken is the last: all steps done, or the time limit reached."""
        return self.step >= self.config.steps or self.time_used >= 1.0

    @property
    def last_terms(self) -> dict[str, float]:
        """The loss terms of the latest history entry (empty before the first)."""
        return {k: v for k, v in self.history[-1].items() if k not in _NOT_TERMS} if self.history else {}

    def run(self) -> Path:
        """Train to ``config.steps`` (or the time limit); export and return ``RUN/final.safetensors``.

        After every step the hooks run, in order; their time does not count towards the time limit.
        """
        cfg = self.config
        for hook in self.hooks:
            hook.before_train()
        t_last = time.perf_counter()
        try:
            for batch in self.loader():
                values, pred = self.train_step(batch)
                now = time.perf_counter()
                self.wall_s += now - t_last
                if cfg.time_limit_min:
                    self.time_used = self._time_share()
                    self._refresh_lr()
                for hook in self.hooks:
                    hook.after_step(values, pred)
                t_last = time.perf_counter()
                if self.done:
                    break
        finally:
            for hook in self.hooks:
                hook.after_train()
        if self.step < cfg.steps and self.info.is_main:
            print(
                f"train {self.stage}: time limit of {cfg.time_limit_min:g} min reached at step {self.step} "
                f"of {cfg.steps}",
                file=sys.stderr,
            )
        return self.export()

    def save_checkpoint(self) -> Path | None:
        """Write ``RUN/checkpoints/step_N.pt`` atomically (rank 0) and prune old ones."""
        rngs = dist_utils.gather_objects(rng_state(self.device), self.info)
        path = None
        if self.info.is_main:
            ckpt = {
                "step": self.step,
                "wall_s": self.wall_s,
                "stage": self.stage,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "model_config": {k: getattr(self.model_config, k) for k in self.model_config.__dataclass_fields__},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rngs,
                "history": self.history,
                "config": self.config.to_dict(),
            }
            if self.ema is not None:
                ckpt["ema"] = self.ema.state_dict()
            path = write_checkpoint(checkpoint_path(self.run_dir, self.step), ckpt)
            prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        dist_utils.barrier(self.info)
        return path

    def export(self, path: str | Path | None = None) -> Path:
        """Write the weights with their recipe (rank 0); every rank returns the path.

        With ``ema_decay`` the file holds the weights' moving average and the last step's own
        weights go beside it (``RUN/final_raw.safetensors``, or ``path``'s stem + ``_raw``).
        """
        dist_utils.broadcast_buffers(self.model, self.info)
        path = Path(path) if path else self.run_dir / FINAL_WEIGHTS
        if self.ema is None:
            self._export_to(path)
        else:
            raw_path = self.run_dir / RAW_WEIGHTS if path.name == FINAL_WEIGHTS else path.with_stem(path.stem + "_raw")
            self._export_to(raw_path)
            raw = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.ema.copy_to(self.model)
            try:
                self._export_to(path, {"ema_decay": self.config.ema_decay, "ema_updates": self.ema.updates})
            finally:
                self.model.load_state_dict(raw)
        dist_utils.barrier(self.info)
        return path

    def _export_to(self, path: Path, averaged: dict[str, Any] | None = None) -> None:
        """Save the model as it is now to ``path`` (rank 0), with the recipe and the run summary."""
        if self.info.is_main:
            recipe = {
                "stage": self.stage,
                "train_config": self.config.to_dict(),
                "steps": self.step,
                "wall_time_s": round(self.wall_s, 2),
                "world_size": self.info.world_size,
                "final_losses": self.last_terms,
                "previous": self.init_metadata.get("recipe"),
            }
            if averaged:
                recipe["weight_average"] = averaged
            extra = {"trained_stage": self.stage}
            if self.init_metadata.get("sha256"):
                extra["init_sha256"] = self.init_metadata["sha256"]
            save_weights(self.model, self.model_config, path, recipe=recipe, extra=extra)
            summary = {
                "weights": str(path),
                "steps": self.step,
                "wall_time_s": self.wall_s,
                "final_losses": self.last_terms,
            }
            write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")

    def close(self) -> None:
        """Flush logs."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run ``config`` (continuing from the run folder's latest checkpoint if ``resume``).

    Returns the path of the exported weights (``RUN/final.safetensors``).
    """
    trainer = Trainer(config, resume=resume)
    try:
        return trainer.run()
    finally:
        trainer.close()


__all__ = ["FINAL_WEIGHTS", "RAW_WEIGHTS", "Trainer", "train"]
