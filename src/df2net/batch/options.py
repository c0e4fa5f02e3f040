"""How a reconstruction run builds its Reconstructor and what it writes, in one dataclass.

Every engine (the local loop, each Ray worker) builds its
:class:`~df2net.reconstruct.Reconstructor` from the same :class:`ReconstructOptions`, so an
option added to ``Reconstructor.__init__`` (say a detector choice) reaches every worker by being
put in :attr:`ReconstructOptions.reconstructor_kwargs`, without touching the engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from df2net import config
from df2net.outputs import ALL_FORMATS

if TYPE_CHECKING:  # pragma: no cover
    from df2net.reconstruct import Reconstructor


@dataclass(frozen=True)
class ReconstructOptions:
    """The options of a run, as every worker needs them.

    Attributes:
        weights: a ``.safetensors`` file, or None for the weights shipped with df2net (each
            worker takes its own installation's).
        device: ``"cpu"`` or ``"cuda"``.
        backend: ``"auto"``, ``"torch"`` or ``"onnxruntime"`` (:mod:`df2net.backends`).
        formats: the output formats to write (:data:`df2net.outputs.FORMATS`).
        batch_faces: faces run through the network together.
        reconstructor_kwargs: any further keyword arguments of ``Reconstructor(...)`` (e.g.
            detector options), passed through unchanged.
    """

    weights: str | None = None
    device: str = "cpu"
    backend: str = "auto"
    formats: frozenset[str] = ALL_FORMATS
    batch_faces: int = 4
    reconstructor_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weights is not None:
            object.__setattr__(self, "weights", str(self.weights))
        object.__setattr__(self, "formats", frozenset(self.formats))
        if self.batch_faces < 1:
            raise ValueError(f"batch_faces must be at least 1, got {self.batch_faces}")

    @property
    def min_face_size(self) -> int:
        """The smallest face (box side, px) the run reconstructs: the one given in
        :attr:`reconstructor_kwargs`, else the detector's reach (:data:`df2net.config.MIN_FACE_SIZE`)."""
        return int(self.reconstructor_kwargs.get("min_face_size", config.MIN_FACE_SIZE))

    def absolute(self) -> ReconstructOptions:
        """The same options with the weights path made absolute (for workers elsewhere)."""
        if self.weights is None:
            return self
        return replace(self, weights=str(Path(self.weights).absolute()))

    def build(self, **overrides: Any) -> Reconstructor:
        """A :class:`~df2net.reconstruct.Reconstructor` for these options.

        ``overrides`` replace single arguments, e.g. ``device="cpu"`` for a worker that only
        detects faces.
        """
        from df2net.reconstruct import Reconstructor

        kwargs: dict[str, Any] = {
            **self.reconstructor_kwargs,
            "weights": self.weights,
            "device": self.device,
            "backend": self.backend,
            "max_batch": self.batch_faces,
        }
        kwargs.update(overrides)
        return Reconstructor(**kwargs)

    def for_detection(self) -> Reconstructor:
        """A Reconstructor for a worker that only loads photos and detects faces.

        It is built like every other (so detector options apply the same way) but keeps its
        network on the CPU in PyTorch, where it costs least; that network is never run.
        """
        return self.build(device="cpu", backend="torch")

    def check(self) -> str:
        """Check what can be checked before any worker starts; return the weights' sha256.

        The backend must suit the device, and the weights must load (once, on the CPU; their
        metadata's sha256 is checked on load). Raises :class:`~df2net.errors.Df2netError`.
        """
        from df2net.backends import resolve_backend
        from df2net.model.weights import load_model

        resolve_backend(self.backend, self.device)
        return str(load_model(self.weights).metadata.get("sha256", ""))
