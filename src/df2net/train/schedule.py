"""The learning-rate schedule of both trainers: linear warm-up, then cosine decay."""

from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float, progress: float = 0.0) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine to ``min_ratio``.

    ``progress`` in [0, 1] (e.g. the share of a time budget used) moves the cosine on when it is
    further along than the steps are.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, max((step - warmup) / span, progress))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
