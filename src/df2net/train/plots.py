"""Curves of a training run's history: the losses, and validation scores where logged."""

from __future__ import annotations

import io
from pathlib import Path

from df2net.io import write_bytes_atomic

__all__ = ["in_micrometres", "plot_history"]


#: History entries that are bookkeeping, not curves.
_NOT_PLOTTED = ("step", "lr", "s_per_step", "time_min", "level")


def in_micrometres(key: str) -> bool:
    """Whether a logged score is in micrometres: its name has a ``_um`` part (``false_relief_um``,
    ``false_relief_um_mean``), so it gets the µm axis instead of squashing the unitless scores."""
    return "um" in key.split("_")[1:]


def plot_history(history: list[dict[str, float]], path: str | Path, title: str = "") -> bool:
    """Plot a run's history as a PNG; False without matplotlib.

    The terms every entry logs (the losses) go on a log scale against the step; the terms only
    some entries hold (validation scores, logged every few intervals) go in a second panel
    below, as points joined by lines, those in micrometres (:func:`in_micrometres`) on their own
    right axis.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    first = history[0] if history else {}
    losses = [k for k in first if k not in _NOT_PLOTTED]
    later: list[str] = []
    for h in history:
        later += [k for k in h if k not in first and k not in _NOT_PLOTTED and k not in later]
    fig = Figure(figsize=(8, 7.0 if later else 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(2 if later else 1, 1, 1)
    steps = [h["step"] for h in history]
    for key in losses:
        ys = [h.get(key, float("nan")) for h in history]
        ax.plot(steps, ys, label=key, linewidth=2.0 if key in ("total", "loss") else 1.0)
    if losses and all(h.get(k, 1.0) > 0 for h in history for k in losses):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if losses:
        ax.legend(loc="upper right", fontsize=8)
    if later:
        val = fig.add_subplot(2, 1, 2, sharex=ax)
        um = val.twinx() if any(in_micrometres(k) for k in later) else None
        for i, key in enumerate(later):
            pts = [(h["step"], h[key]) for h in history if key in h]
            target = um if (um is not None and in_micrometres(key)) else val
            target.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, color=f"C{i}", label=key)
        val.set_xlabel("step")
        val.set_ylabel("validation")
        val.grid(True, alpha=0.3)
        handles, labels = val.get_legend_handles_labels()
        if um is not None:
            um.set_ylabel("µm")
            h2, l2 = um.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        val.legend(handles, labels, loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes_atomic(path, buf.getvalue())
    return True
