"""Training configuration: dataclasses saved beside every run as ``config.json``.

One :class:`TrainConfig` says everything a run does: which stage trains, on which data folders
(each with a sampling weight), for how long, with which losses and augmentations. It round-trips
through JSON (:meth:`TrainConfig.to_dict` / :meth:`TrainConfig.from_dict`), so a run folder alone
is enough to resume it or to know how its weights were made.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

Stage = Literal["dense", "fine", "finer"]
STAGES: tuple[str, ...] = ("dense", "fine", "finer")

#: Name of the configuration file written into every run folder.
CONFIG_FILE = "config.json"


@dataclass
class DataSource:
    """One dataset folder (written by ``df2net make-data``) and its share of every batch.

    ``weight`` is relative: with sources weighted 3 and 1, a batch of 8 holds 6 and 2 samples.
    """

    path: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"data source {self.path!r}: weight must be > 0, got {self.weight}")

    @classmethod
    def parse(cls, text: str) -> DataSource:
        """``"DIR"`` or ``"DIR:WEIGHT"`` (a path may itself hold ':' as long as the tail is no number)."""
        head, sep, tail = text.rpartition(":")
        if sep and head:
            try:
                return cls(head, float(tail))
            except ValueError:
                pass
        return cls(text, 1.0)


@dataclass
class LossConfig:
    """Loss weights and settings. A stage uses only the terms that belong to it.

    Supervised terms (every stage): ``depth`` (L1 after removing each sample's mean offset inside
    the mask, network units), ``normal`` (1 - cos of the normals, inside the mask eroded by
    ``normal_erode_px``) and ``gradient`` (L1 of the depth-gradient error in grid pixels, same
    mask; linear in the error, so sub-pixel detail still pulls). The dense stage compares with the
    depth *without* procedural detail, the fine and finer stages with the depth *with* detail.
    Samples of "fits" folders (real photos with 3DMM-fit pseudo truth) count ``fits_weight`` times
    a synthetic sample in these terms. In the finer stage pixels inside the detail mask weigh
    ``1 + detail_boost`` in the normal and gradient terms.

    ``detail`` (finer stage, synthetic samples): the gradient L1 between the detail Fr-Net adds
    (finer minus fine depth) and the procedural detail of the render (``depth - depth_base``),
    with the same mask and ``detail_boost`` weights. Unlike the terms against the whole depth it
    is blind to F-Net's coarse errors, which Fr-Net cannot fix and which otherwise drown the
    wrinkles (their relief is a tenth of a pixel; F's error about a pixel).

    ``pair`` and ``pair_band`` (dense and fine stages; need renders made with ``make-data
    synthetic --marks``): the stage also runs on the twin of marked samples, the same render without
    its albedo-only marks, and penalises what the marks change: ``pair`` the L1 of the whole
    difference of the two depths (in pixels of the stage grid, each pair's mean offset removed),
    ``pair_band`` the L1 of its high-pass (``pair_sigma_px`` crop pixels, the relief band of
    ``evaluate``'s false relief); pixels under the marks weigh ``1 + pair_marks_boost``. The twins
    are also supervised like any sample (their target is the same). How many twins join each batch:
    :attr:`TrainConfig.pair_share`.

    ``band`` (every stage): the L1 of the high-pass of the depth error at ``pair_sigma_px`` crop
    pixels (:func:`df2net.train.losses.band_l1`), the band in which ``evaluate`` scores relief;
    sample weights as the other supervised terms.

    ``region_boost`` (every stage; 0, the default, turns it off): pixels in the mouth and the eyes
    weigh ``1 + region_boost`` in the supervised terms ``depth``, ``normal``, ``gradient`` and
    ``band``, for synthetic and fits samples alike; each term stays a weighted mean inside its
    mask, so its scale stays comparable. The regions come from each sample's ``landmarks.json``
    (:func:`df2net.face_regions.expression_regions`: the lips and eyes, widened; none without the
    file) and move with the masks through every augmentation. Widened as they are, they cover
    about a sixth of the face mask (the lips and eyes themselves ~6 %), so with a boost of ``X``
    they weigh ``16 (1 + X) / (84 + 16 (1 + X))`` of these terms (a third at 2, half at 4). In the
    finer stage these weights multiply ``detail_boost``'s (the ``detail`` term does not get them).

    ``plane`` (every stage, synthetic samples; 0 turns it off): the L1 of the slopes of the best
    planes of the depth and its target inside the mask (:func:`df2net.train.losses.plane_l1`,
    network units gained from the middle to the grid's edge). The overall tilt is the largest
    single part of D-Net's error (a third of it on the held-out sets) and the per-pixel terms
    weigh it weakly: ``1 - cos`` of the normals is quadratic in a 3-degree tilt. With
    ``fits_tilt_free`` a fits sample's ``depth`` term ignores each depth's best plane: a landmark
    fit's tilt is worse than the network's own (``docs/evaluation_ict``), so fits teach shape only.

    Finer-stage self-supervision, on every sample: ``shading`` (photo luminance against
    ``albedo * shade(normals, L)``, ``L`` fitted per image by least squares, albedo a Gaussian
    low-pass of ``sigma = albedo_sigma * side`` pixels; on synthetic samples it counts
    ``shading_synthetic`` times, as their photo textures carry shading their depth does not
    have), ``fidelity`` (L1 between the finer and the fine depth) and ``laplacian`` (L1 of the
    Laplacian of the added detail, in pixels).
    """

    depth: float = 1.0
    normal: float = 1.0
    gradient: float = 0.0
    fits_weight: float = 1.0
    detail_boost: float = 0.0
    shading: float = 0.0
    shading_synthetic: float = 1.0
    fidelity: float = 0.0
    laplacian: float = 0.0
    detail: float = 0.0
    pair: float = 0.0
    pair_band: float = 0.0
    band: float = 0.0
    pair_sigma_px: float = 4.0
    pair_marks_boost: float = 4.0
    normal_erode_px: int = 2
    albedo_sigma: float = 0.02
    sh_reg: float = 1e-5
    region_boost: float = 0.0
    plane: float = 0.0
    fits_tilt_free: bool = False

    @classmethod
    def for_stage(cls, stage: str) -> LossConfig:
        """The default weights of ``stage``."""
        if stage == "dense":
            return cls(depth=1.0, normal=1.0, fits_weight=1.0)
        if stage == "fine":
            return cls(depth=1.0, normal=2.0, gradient=1.0, fits_weight=0.3)
        if stage == "finer":
            return cls(
                depth=0.5,
                normal=1.0,
                gradient=0.5,
                fits_weight=0.0,
                detail_boost=4.0,
                shading=1.0,
                shading_synthetic=0.0,
                fidelity=0.2,
                laplacian=0.005,
                detail=20.0,
            )
        raise ValueError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")


@dataclass
class AugmentConfig:
    """Random augmentations, applied to each training sample (see :mod:`df2net.train.augment`).

    Geometric ones act on image, depth, normals and masks together; photometric ones act on the
    network input only (the shading loss sees the geometrically augmented, unaltered photo).
    Probabilities are per sample; ranges are symmetric around "no change".
    """

    enabled: bool = True
    flip: float = 0.5
    scale: float = 0.05
    shift: float = 0.03
    rotate_deg: float = 5.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.25
    hue: float = 0.03
    gamma: float = 0.25
    tint: float = 0.1
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    jpeg_prob: float = 0.3
    jpeg_quality: tuple[int, int] = (30, 95)
    noise_prob: float = 0.3
    noise_std: float = 0.03
    occlusion_prob: float = 0.2
    occlusion_max: int = 2
    occlusion_size: float = 0.3
    # A small face: the input shrunk to a random share of its side in this range, then enlarged
    # back (bicubic), as inference enlarges a face under ~160 px into the crop. Off by default.
    lowres_prob: float = 0.0
    lowres_scale: tuple[float, float] = (0.25, 0.6)

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls(enabled=False)


@dataclass
class TrainConfig:
    """Everything one training run does. Saved as ``config.json`` in the run folder ``out``.

    Sizes: ``train_size`` is the side of the network input during training (default: the model's
    ``input_size``). The dense and fine stages run D-Net and F-Net at their native side,
    ``train_size * dense_size / input_size``; the loader gives crops of that side directly. The
    finer stage runs the whole chain at ``train_size``.

    Network: ``model`` names a :data:`~df2net.model.MODEL_CONFIGS` entry (None: the ``init``
    weights' config, or ``"cpu"`` without them), with ``model_overrides`` replacing fields of it.

    ``threads`` sets ``torch.set_num_threads`` for the run (None: torch's default). On a CPU
    shared with other work, 1 thread per process is often faster than more. ``channels_last``
    keeps the weights and the input batch channels-last (NHWC), the layout oneDNN's CPU
    convolutions run fastest in (about 1.3x a D+F step here, ``benchmarks/train_step.py``); the
    numbers are the same up to rounding. ``amp`` runs the forward pass under bfloat16 autocast (on
    CUDA, and on CPUs with AVX-512 BF16 about 2.5x faster again than fp32 channels-last); the
    layers that read or write depth stay float32 (:func:`df2net.model.blocks.full_precision`), but
    the rest of a deep U-Net in bf16 still moves the depth by about a pixel RMS against fp32 and
    F-Net's fine band by about 0.06 px: for D-Net's coarse shape, not for F-Net's or Fr-Net's
    detail (the weights are always fp32). The ``pair_band``
    term compares two forward passes at hundredths of a pixel, so under bf16 it reads mostly the
    two passes' rounding (0.03-0.04 against 0.006 in fp32 on the shipped D-Net). Tried on D-Net
    (recipe step 18) it moved D's output level by 0.2 network units (the losses ignore the level;
    F-Net does not, unless ``ModelConfig.fine_level_ref`` makes it level-free, which mended that
    chain): not used for the shipped weights.

    ``dropout`` replaces the probability of D-Net's decoder dropout while training (None: the
    released 0.5; it does nothing at inference). ``cache_mb`` bounds the memory each data
    process uses to keep loaded samples (at the training side) for later passes.

    ``patch_size`` (finer stage only): D-Net and F-Net run on the whole ``train_size`` crop, but
    Fr-Net and its losses on one random ``patch_size`` square per sample, centred on the face.
    Fr-Net's detail is local, so patches teach it as well at a fraction of the cost.
    ``zero_detail`` (finer stage only): Fr-Net's last layer starts at zero (not on resume), so the
    chain starts exactly at F's depth instead of adding the random detail of a fresh Fr-Net.

    Network with ``init``: the init weights fix the network unless ``model`` or
    ``model_overrides`` ask for another; then every tensor that fits is copied (a warning names
    the ones that start fresh), e.g. to widen F-Net's head after training D-Net.

    ``pair_share``: with the pair loss terms on, at most ``ceil(batch_size * pair_share)``
    samples of each batch that have an unmarked twin bring it along (each twin costs a sample's
    compute).

    Schedule: Adam, learning rate warmed up linearly over ``warmup_steps``, then cosine-decayed
    to ``lr * min_lr_ratio`` at ``steps``. With ``time_limit_min`` the run also ends once its
    training time (summed over resumes) reaches that many minutes, and the cosine follows
    whichever of steps and time is further along, so it reaches its floor either way. Such a run
    is not step-for-step reproducible (where it stops depends on the machine's speed).

    ``ema_decay`` (e.g. 0.999): keep an exponential moving average of the weights
    (:class:`~df2net.train.ema.WeightAverage`, in the checkpoints) and export it as
    ``RUN/final.safetensors``; the last step's own weights go to ``RUN/final_raw.safetensors``.
    """

    stage: str = "dense"
    data: list[DataSource] = field(default_factory=list)
    out: str = "runs/dense"
    model: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    train_size: int | None = None
    losses: LossConfig | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    num_workers: int = 2
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    channels_last: bool = True
    threads: int | None = None
    dropout: float | None = None
    cache_mb: int = 3072
    patch_size: int | None = None
    zero_detail: bool = False
    time_limit_min: float | None = None
    pair_share: float = 0.5
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r} (known: {', '.join(STAGES)})")
        self.data = [d if isinstance(d, DataSource) else DataSource(**d) for d in self.data]
        if self.losses is None:
            self.losses = LossConfig.for_stage(self.stage)
        elif isinstance(self.losses, dict):
            self.losses = LossConfig(**self.losses)
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**_tuples(AugmentConfig, self.augment))
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.patch_size is not None and (self.stage != "finer" or self.patch_size < 16 or self.patch_size % 4):
            problems.append(f"patch_size is for the finer stage, a multiple of 4 >= 16; got {self.patch_size}")
        if self.zero_detail and self.stage != "finer":
            problems.append("zero_detail is for the finer stage")
        if self.time_limit_min is not None and not self.time_limit_min > 0:
            problems.append(f"time_limit_min must be > 0, got {self.time_limit_min}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if not 0.0 < self.pair_share <= 1.0:
            problems.append(f"pair_share must be in (0, 1], got {self.pair_share}")
        if (self.losses.pair or self.losses.pair_band) and self.stage == "finer":
            problems.append(
                "the pair terms are for the dense and fine stages (the finer stage: df2net train-relief --pair-weight)"
            )
        if not self.losses.region_boost >= 0:
            problems.append(f"losses.region_boost must be >= 0, got {self.losses.region_boost}")
        if not self.losses.plane >= 0:
            problems.append(f"losses.plane must be >= 0, got {self.losses.plane}")
        if self.cache_mb < 0:
            problems.append(f"cache_mb must be >= 0, got {self.cache_mb}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        for name in ("log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            problems.append(f"device must be cpu or cuda, got {self.device!r}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**_tuples(cls, dict(data)))

    def save(self, path: str | Path) -> None:
        """Write the config as indented JSON, atomically."""
        from df2net.io import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a config written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)


def _tuples(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to tuples for the fields whose default is a tuple."""
    out = dict(data)
    for f in fields(cls):
        if f.name in out and isinstance(out[f.name], list) and "tuple" in str(f.type):
            out[f.name] = tuple(out[f.name])
    return out
