"""How inference uses the CPU: the network's thread count and the freed memory it keeps.

No PyTorch here: ONNX Runtime's session takes :func:`inference_threads` as it is, and
:func:`set_inference_threads` hands the same count to PyTorch (importing it) for the torch
backend. :func:`keep_freed_memory` stops the allocator from handing a forward pass's memory back
to the system only to fault it in again on the next one.
"""

from __future__ import annotations

import os

__all__ = ["inference_threads", "keep_freed_memory", "physical_cores", "set_inference_threads"]


def physical_cores() -> int:
    """The number of physical CPU cores this process may use (hyper-threads not counted).

    Read from ``/sys`` on Linux (unique ``(package, core)`` pairs among the allowed CPUs); falls
    back to the allowed CPU count elsewhere.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as p, open(f"{base}/core_id") as c:
                cores.add((p.read().strip(), c.read().strip()))
        except OSError:
            return max(1, len(allowed))
    return max(1, len(cores))


#: glibc ``mallopt`` parameters: the size above which ``malloc`` maps fresh pages, and the free
#: space at the top of the heap above which ``free`` returns it to the system.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """Let this process reuse the memory of freed tensors instead of giving it back (glibc only).

    PyTorch's CPU allocator is ``malloc``: by default glibc maps each large block (a 16-channel
    512x512 activation is 16 MiB) with fresh pages and unmaps it when freed, so every forward pass
    page-faults its whole working set in again: about 11,000 faults and 40 % of the time of the
    optimised "cpu" network on a 2-core VM (``benchmarks/README.md``). Raising ``M_MMAP_THRESHOLD``
    to its maximum (32 MiB) and ``M_TRIM_THRESHOLD`` to 1 GiB keeps those blocks in the heap; the
    process's memory then stays at its peak instead of falling back after each photo. Called once
    per process by :func:`df2net.backends.make_backend`; returns whether it took effect.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    _MALLOC_TUNED = ok
    return ok


_THREADS: int | None = None  # the count decided for this process
_TORCH_THREADS_SET = False


def inference_threads(threads: int | None = None) -> int:
    """The network's thread count in this process, decided without importing PyTorch.

    ``threads`` when given (it then stands for later calls); else the count decided before, or
    on the first call ``OMP_NUM_THREADS`` when it names one, else :func:`physical_cores`.
    """
    global _THREADS
    if threads is not None:
        _THREADS = max(1, int(threads))
    elif _THREADS is None:
        _THREADS = _omp_threads() or physical_cores()
    return _THREADS


def set_inference_threads(threads: int | None = None) -> int:
    """Set PyTorch's intra-op threads to :func:`inference_threads`, once per process.

    Later calls without ``threads`` change nothing (a user's or an earlier caller's choice
    stands); ``threads`` sets that many. Returns the thread count in force.
    """
    global _TORCH_THREADS_SET
    import torch

    count = inference_threads(threads)
    if threads is not None or not _TORCH_THREADS_SET:
        torch.set_num_threads(count)
        _TORCH_THREADS_SET = True
    return torch.get_num_threads()


def _omp_threads() -> int | None:
    """The thread count ``OMP_NUM_THREADS`` names (its first level), or None."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None
