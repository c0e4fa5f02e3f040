"""Reading ``df2net make-data`` folders for training, and mixing several of them in every batch.

:class:`FaceFolder` reads one folder (format in docs/conventions.md) and gives samples as tensors
at any square side. :class:`TrainingSet` augments them and makes the network input.
:class:`MixedBatchSampler` draws every batch from all folders by their weights (e.g. 6 synthetic
and 2 real photos in each batch of 8), sharded between the processes of a distributed run the way
``DistributedSampler`` shards an epoch: all ranks compute the same global batch and each takes its
own disjoint slice. Everything random is a pure function of ``(seed, step, slot)``, so a resumed
run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from df2net.config import CROP_SIZE
from df2net.errors import InputError
from df2net.train import augment as aug
from df2net.train.config import AugmentConfig, DataSource

KINDS = ("synthetic", "fits")

#: A key of :class:`TrainingSet`: (source, index in that source, step, slot in the global batch).
SampleKey = tuple[int, int, int, int]


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _read_mask(path: Path, shape: tuple[int, ...], default: bool) -> np.ndarray:
    """A 0/255 mask PNG (its first channel) as bool ``(H, W)``; ``default`` everywhere if the file is missing."""
    if not path.is_file():
        return np.full(shape, default)
    mask = _read_png(path) > 127
    return mask[..., 0] if mask.ndim == 3 else mask


def _read_regions(path: Path, side: int) -> np.ndarray:
    """The mouth and eyes of ``landmarks.json`` (its ``"crop"`` points) on a ``side`` grid, bool ``(side, side)``.

    The rule is :func:`df2net.face_regions.expression_regions`; all False if the file is missing.
    """
    if not path.is_file():
        return np.zeros((side, side), bool)
    from df2net.face_regions import expression_regions

    try:
        points = np.asarray(json.loads(path.read_text(encoding="utf-8"))["crop"], np.float32)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path.name}: no crop landmarks ({exc})") from None
    if points.shape != (68, 2):
        raise ValueError(f"{path.name}: expected 68 (u, v) crop points, got shape {points.shape}")
    if side != CROP_SIZE:  # crop pixels (centres at integers) to pixels of this grid
        points = (points + 0.5) * (side / CROP_SIZE) - 0.5
    return expression_regions(points, side)


@dataclass
class FaceFolder:
    """One dataset folder: its kind (``"synthetic"`` or ``"fits"``) and sample names."""

    root: Path
    kind: str
    names: list[str]

    @classmethod
    def open(cls, root: str | Path) -> FaceFolder:
        """Read ``manifest.json`` (or, without one, list the sample subfolders)."""
        root = Path(root)
        if not root.is_dir():
            raise InputError(root, "dataset folder not found")
        manifest = root / "manifest.json"
        if manifest.is_file():
            try:
                meta = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(manifest, f"unreadable manifest: {exc}") from None
            kind = str(meta.get("kind", ""))
            names = [str(n) for n in meta.get("samples", [])]
        else:
            names = sorted(p.name for p in root.iterdir() if (p / "image.png").is_file())
            kind = "synthetic" if names and (root / names[0] / "depth_base.npy").is_file() else "fits"
        if kind not in KINDS:
            raise InputError(manifest, f"unknown dataset kind {kind!r} (known: {', '.join(KINDS)})")
        names = [n for n in names if (root / n / "image.png").is_file() and (root / n / "depth.npy").is_file()]
        if not names:
            raise InputError(root, "no samples (sample folders need image.png and depth.npy)")
        return cls(root, kind, names)

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int, size: int, twin: bool = False, region: bool = False) -> aug.Sample:
        """Sample ``index`` as tensors at ``size x size`` (area-downsampled), fields as in :mod:`augment`.

        Depth is in crop pixels (``CROP_SIZE`` per side, as ``depth.npy`` holds), whatever ``size``; missing optional
        files are filled in: ``depth_base`` = ``depth``, ``detail_mask`` empty, ``normals`` computed
        from ``depth``. With ``twin``, also ``image_twin`` (the same render without its albedo-only
        marks, ``image_unmarked.png``; the image itself where there is none), ``marks_mask``
        (where they were painted; empty without a twin) and ``has_twin`` (``(1, 1, 1)``, 1 where
        there is one). With ``region``, also ``region``: the mouth and eyes drawn from
        ``landmarks.json`` (:func:`df2net.face_regions.expression_regions`; empty without the file).
        """
        folder = self.root / self.names[index]
        try:
            image = _read_png(folder / "image.png")
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=2)
            image = image[..., :3]
            face_mask = _read_mask(folder / "mask.png", image.shape[:2], True)
            depth = np.load(folder / "depth.npy").astype(np.float32)
            base_path = folder / "depth_base.npy"
            base = np.load(base_path).astype(np.float32) if base_path.is_file() else depth
            valid = np.isfinite(depth) & (depth != 0) & np.isfinite(base)
            depth = np.where(valid, depth, 0.0).astype(np.float32)
            base = np.where(valid, base, 0.0).astype(np.float32)
            normals_path = folder / "normals.npy"
            if normals_path.is_file():
                normals = np.nan_to_num(np.load(normals_path).astype(np.float32))
            else:
                from df2net.geometry import depth_to_normals

                normals = depth_to_normals(depth, valid)
            detail = _read_mask(folder / "detail_mask.png", valid.shape, False)
            twin_path = folder / "image_unmarked.png"
            has_twin = twin and twin_path.is_file()
            image_twin = _read_png(twin_path)[..., :3] if has_twin else image
            marks = _read_mask(folder / "marks_mask.png", valid.shape, False) if has_twin else np.zeros_like(valid)
            regions = _read_regions(folder / "landmarks.json", image.shape[0]) if region else None
        except (OSError, ValueError) as exc:
            raise InputError(folder, f"unreadable sample: {exc}") from None
        side = image.shape[0]
        if side != CROP_SIZE:  # depth files hold pixels of their own grid; we speak crop pixels
            depth, base = depth * (CROP_SIZE / side), base * (CROP_SIZE / side)
        shapes = {image.shape[:2], face_mask.shape, depth.shape, base.shape, normals.shape[:2], detail.shape}
        shapes |= {image_twin.shape[:2], marks.shape}
        if regions is not None:
            shapes.add(regions.shape)
        if len(shapes) != 1 or image.shape[1] != side:
            raise InputError(folder, f"sample files disagree in size or are not square: {sorted(shapes)}")

        def t(a: np.ndarray) -> torch.Tensor:
            a = np.asarray(a, dtype=np.float32)
            return torch.from_numpy(a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1)))

        sample = {
            "image": t(image) / 255.0,
            "face_mask": t(face_mask),
            "valid": t(valid),
            "depth": t(depth),
            "depth_base": t(base),
            "normals": t(normals),
            "detail_mask": t(detail),
        }
        if twin:
            sample["image_twin"] = t(image_twin) / 255.0
            sample["marks_mask"] = t(marks)
            sample["has_twin"] = torch.full((1, 1, 1), float(has_twin))
        if regions is not None:
            sample["region"] = t(regions)
        return resize_sample(sample, size) if size != side else sample


def resize_sample(sample: aug.Sample, size: int) -> aug.Sample:
    """Area-resample every field to ``size x size``.

    Depth is averaged over valid pixels only; masks are thresholded at 0.5; normals renormalised.
    Depth values are not rescaled: they stay in crop pixels.
    """
    return aug.resample_fields(sample, lambda x: F.interpolate(x, size=(size, size), mode="area"))


class SampleCache:
    """Loaded samples kept in memory up to a byte budget; once it is spent, new ones are not kept.

    Reading and resizing the PNG and ``.npy`` files of a sample costs more than a small network's
    step on a CPU, and every pass over the data reads them again; augmentation happens after the
    cache, so the samples stay random.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.used = 0
        self._items: dict[tuple[int, int], aug.Sample] = {}

    def get(self, key: tuple[int, int]) -> aug.Sample | None:
        """The sample stored under ``key`` (its tensors are shared: do not modify them), or None."""
        return self._items.get(key)

    def put(self, key: tuple[int, int], sample: aug.Sample) -> None:
        """Keep ``sample`` if it fits in what is left of the budget."""
        size = sum(t.element_size() * t.nelement() for t in sample.values())
        if key not in self._items and self.used + size <= self.max_bytes:
            # Compact copies: a resized field can be a view into a larger buffer.
            self._items[key] = {k: t.clone(memory_format=torch.contiguous_format) for k, t in sample.items()}
            self.used += size


class TrainingSet(torch.utils.data.Dataset):
    """Augmented training samples from several folders, indexed by :data:`SampleKey`.

    ``dataset[(source, index, step, slot)]`` is a dict of tensors at ``size x size``:

    - ``input`` ``(3, S, S)``: the network input (photometrically augmented, masked, [-1, 1]);
    - ``image`` ``(3, S, S)``: the geometrically augmented photo in [0, 1] (for the shading loss);
    - ``mask`` ``(1, S, S)``: where the loss applies (face mask and a valid depth), 0/1;
    - ``face_mask``, ``detail_mask`` ``(1, S, S)`` 0/1;
    - ``depth``, ``depth_base`` ``(1, S, S)``: targets in crop pixels (``CROP_SIZE`` per crop
      side, whatever ``S``), magnified with the picture;
    - ``normals`` ``(3, S, S)``; ``synthetic`` ``()`` 1.0 for synthetic samples, 0.0 for fits;
      ``source`` ``()`` int64.
    - with ``twins``: ``input_twin`` ``(3, S, S)``, the network input of the same render without
      its albedo-only marks (same augmentation, draw for draw), ``marks_mask`` ``(1, S, S)`` where
      they are, and ``has_twin`` ``()`` 1.0 where the sample has such a render (elsewhere
      ``input_twin`` is ``input`` and ``marks_mask`` empty).
    - with ``regions``: ``region`` ``(1, S, S)`` 0/1, the mouth and eyes of the sample's
      landmarks (:func:`df2net.face_regions.expression_regions`), flipped, warped and resized
      with the masks; empty for a sample without ``landmarks.json``.

    The augmentation random generator is seeded by ``(seed, step, slot)`` only. Loaded samples
    are kept in memory (each data process its own copy) until ``cache_bytes`` are used.
    """

    def __init__(
        self,
        sources: Sequence[DataSource | str],
        size: int,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        cache_bytes: int = 0,
        twins: bool = False,
        regions: bool = False,
    ) -> None:
        self.sources = [s if isinstance(s, DataSource) else DataSource(str(s)) for s in sources]
        self.twins = bool(twins)
        self.regions = bool(regions)
        if not self.sources:
            raise ValueError("no data folders given")
        self.folders = [FaceFolder.open(s.path) for s in self.sources]
        self.size = int(size)
        self.cache = SampleCache(cache_bytes)
        self.augment = augment if augment is not None else AugmentConfig.off()
        self.seed = int(seed)

    @property
    def sizes(self) -> list[int]:
        """Number of samples in each folder."""
        return [len(f) for f in self.folders]

    @property
    def weights(self) -> list[float]:
        """Sampling weight of each folder."""
        return [s.weight for s in self.sources]

    def __len__(self) -> int:
        return sum(self.sizes)

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        source, index, step, slot = (int(k) for k in key)
        folder = self.folders[source]
        sample = self.cache.get((source, index))
        if sample is None:
            sample = folder.load(index, self.size, twin=self.twins, region=self.regions)
            self.cache.put((source, index), sample)
        rng = np.random.default_rng([self.seed, step, slot, source, index])
        cfg = self.augment
        has_twin = "image_twin" in sample
        if cfg.enabled:
            sample = aug.random_geometry(sample, rng, cfg)
            twin_rng = copy.deepcopy(rng)  # the twin gets exactly the same photometric draws
            photo = aug.photometric(sample["image"], rng, cfg)
            twin_photo = aug.photometric(sample["image_twin"], twin_rng, cfg) if has_twin else None
        else:
            photo, twin_photo = sample["image"], sample.get("image_twin")
        extra = {}
        if has_twin:
            extra = {
                "input_twin": aug.to_network_input(twin_photo, sample["face_mask"]),
                "marks_mask": sample["marks_mask"],
                "has_twin": sample["has_twin"].reshape(()),
            }
        if "region" in sample:
            extra["region"] = sample["region"]
        return {
            **extra,
            "input": aug.to_network_input(photo, sample["face_mask"]),
            "image": sample["image"].clamp(0.0, 1.0),
            "mask": sample["face_mask"] * sample["valid"],
            "face_mask": sample["face_mask"],
            "detail_mask": sample["detail_mask"],
            "depth": sample["depth"],
            "depth_base": sample["depth_base"],
            "normals": sample["normals"],
            "synthetic": torch.tensor(1.0 if folder.kind == "synthetic" else 0.0),
            "source": torch.tensor(source, dtype=torch.int64),
        }


def allocate(batch_size: int, weights: Sequence[float], carry: np.ndarray) -> np.ndarray:
    """How many of ``batch_size`` slots each source gets this step (error diffusion).

    Every source gets at least ``floor(batch_size * share)``; the remaining slots go to the
    sources most owed so far, tracked in ``carry`` (updated in place), so over many steps each
    source's count matches its share exactly.
    """
    w = np.asarray(weights, dtype=np.float64)
    share = batch_size * w / w.sum()
    carry += share
    counts = np.floor(carry).astype(np.int64)
    left = batch_size - int(counts.sum())
    if left > 0:
        order = np.argsort(-(carry - counts), kind="stable")
        counts[order[:left]] += 1
    carry -= counts
    return counts


class MixedBatchSampler(torch.utils.data.Sampler[list[SampleKey]]):
    """Yields, for steps ``start .. steps-1``, one batch of :data:`SampleKey` per step.

    Each batch mixes the sources by weight (:func:`allocate`). Within a source, samples follow a
    stream of random permutations (one per pass over it), so every sample is seen once per pass.
    With ``world_size > 1`` all ranks compute the same global batch of ``batch_size * world_size``
    and rank ``r`` takes its own slice of every source's share: the ranks never see the same
    sample in one step.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        batch_size: int,
        steps: int,
        seed: int = 0,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(sizes) != len(weights) or not sizes:
            raise ValueError("sizes and weights must be non-empty and of equal length")
        self.sizes = [int(s) for s in sizes]
        self.weights = [float(w) for w in weights]
        self.batch_size = int(batch_size)
        self.steps = int(steps)
        self.seed = int(seed)
        self.start = int(start)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def _perm(self, source: int, cycle: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 7919, source, cycle]).permutation(self.sizes[source])

    def __iter__(self) -> Iterator[list[SampleKey]]:
        carry = np.zeros(len(self.sizes))
        used = np.zeros(len(self.sizes), dtype=np.int64)  # global draws so far, per source
        cache: dict[tuple[int, int], np.ndarray] = {}
        for step in range(self.steps):
            counts = allocate(self.batch_size, self.weights, carry)
            if step < self.start:
                used += counts * self.world_size
                continue
            batch: list[SampleKey] = []
            for source, count in enumerate(counts):
                first = used[source] + self.rank * count
                for j in range(int(count)):
                    pos = int(first + j)
                    n = self.sizes[source]
                    cycle = pos // n
                    if (source, cycle) not in cache:
                        cache = {k: v for k, v in cache.items() if k[0] != source}
                        cache[(source, cycle)] = self._perm(source, cycle)
                    index = int(cache[(source, cycle)][pos % n])
                    slot = self.rank * self.batch_size + len(batch)
                    batch.append((source, index, step, slot))
                used[source] += count * self.world_size
            yield batch
