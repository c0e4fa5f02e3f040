"""Data-parallel training with ``torchrun``: process group, model wrapping, collectives.

The training script is the same with one process or many. Launched by ``torchrun`` (which sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``), :func:`setup`
joins the process group (``env://``; ``gloo`` on CPU, ``nccl`` on CUDA), each rank reads its own
slice of every batch (:class:`~df2net.train.datasets.MixedBatchSampler`), DDP averages the
gradients, and only rank 0 writes logs, samples, checkpoints and weights::

    torchrun --nproc_per_node 2 -m df2net train --stage dense --data synth:3 --data fits:1 --out runs/d

Without those variables everything here is a no-op for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the number of processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group with more than one process is in use."""
        return self.world_size > 1


def setup(device: str = "cpu") -> DistInfo:
    """Join the ``torchrun`` process group if there is one; pick this rank's device.

    ``device`` is ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` honoured only for a single process);
    with several processes on CUDA, rank ``r`` takes GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device cuda requested but CUDA is not available")
    if world > 1:
        dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, device=dev)
    return DistInfo(device=torch.device(device))


def cleanup() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when there are several processes."""
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return getattr(module, "module", module)


def barrier(info: DistInfo) -> None:
    """Wait for every process."""
    if info.distributed:
        dist.barrier()


def mean_across(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """The mean of each value over all processes (same keys on every rank)."""
    if not info.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.tolist()))


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``obj`` from every rank, in rank order (on every rank)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def scatter_object(objs: list[Any] | None, info: DistInfo) -> Any:
    """Rank ``r`` gets ``objs[r]`` as given on rank 0."""
    if not info.distributed:
        return objs[0] if objs else None
    out: list[Any] = [None]
    dist.scatter_object_list(out, objs if info.is_main else None, src=0)
    return out[0]


def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (e.g. batch-norm running statistics) to every rank."""
    if not info.distributed:
        return
    for buf in unwrap(module).buffers():
        dist.broadcast(buf.data, src=0)
