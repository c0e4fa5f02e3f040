"""What runs the network at inference: PyTorch or ONNX Runtime, behind one small interface.

A backend stands in for the :class:`~df2net.model.df2net.DF2Net` in
:func:`df2net.reconstruct.predict_stage_depths`: it has ``forward_stages(x)`` (the masked crops
``(B, 3, S, S)`` in [-1, 1] -> :class:`~df2net.model.df2net.DepthStages` in network units) and
``to_pixels(depth)``. Two exist:

- ``torch``: the network with its batch norms folded into the convolutions and its weights
  channels-last (:func:`~df2net.model.optimize.fuse_for_inference`), run eagerly under
  ``torch.inference_mode``; ``optimize=False`` runs the plain eager model instead.
- ``onnxruntime``: the same network exported to ONNX (:mod:`df2net.onnx_export`) and run by ONNX
  Runtime's CPU provider, about twice as fast again on a CPU (``benchmarks/README.md``). It needs
  the optional package ``onnxruntime`` (``pip install 'df2net[onnx]'``). The exported model is
  cached in ``$DF2NET_CACHE_DIR`` (default ``~/.cache/df2net``) under the weights' sha256, so only
  the first run with new weights pays for the export (about 10 s); a ``W.onnx`` written by
  ``df2net export-onnx`` beside ``W.safetensors`` is used as it is when it names those weights.

``auto`` (the default) takes ``onnxruntime`` on the CPU when it is installed, else ``torch``.
Backends are built once per process and weights file (:func:`make_backend` caches them), and
both use the thread count decided in one place, :func:`df2net.cpu.inference_threads`;
:func:`~df2net.cpu.keep_freed_memory` keeps PyTorch's freed activations for reuse.

The ``onnxruntime`` backend of an exported network needs no PyTorch: given a
:class:`~df2net.model.weights.WeightsFile` (:func:`~df2net.model.weights.open_model`), it
imports PyTorch only to export the network when no exported file is found.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from df2net.cpu import inference_threads, keep_freed_memory, set_inference_threads
from df2net.errors import Df2netError
from df2net.io import atomic_path
from df2net.model.config import ModelConfig
from df2net.versions import torch_version

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor

    from df2net.model.df2net import DepthStages
    from df2net.model.weights import LoadedModel, WeightsFile

__all__ = [
    "BACKENDS",
    "Backend",
    "OnnxRuntimeBackend",
    "TorchBackend",
    "cache_dir",
    "make_backend",
    "onnx_session",
    "onnxruntime_available",
    "resolve_backend",
]

#: Backend names a user can choose (``auto`` picks one of the others).
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime")

_ORT_MISSING = "the onnxruntime backend needs the onnxruntime package: pip install 'df2net[onnx]'"


class Backend(Protocol):
    """What :func:`~df2net.reconstruct.predict_stage_depths` needs of a network."""

    name: str
    config: ModelConfig

    def forward_stages(self, x: Tensor) -> DepthStages:
        """Depth of each stage for ``x (B, 3, S, S)``: each ``(B, 1, S, S)``, network units."""
        ...

    def to_pixels(self, depth: Tensor) -> Tensor:
        """Network units to depth pixels at ``input_size``."""
        ...


class TorchBackend:
    """The network in PyTorch: batch norms folded and channels-last unless ``optimize=False``."""

    def __init__(
        self, loaded: LoadedModel | WeightsFile, device: str | torch.device = "cpu", optimize: bool = True
    ) -> None:
        import torch

        from df2net.model.optimize import fuse_for_inference

        self.device = torch.device(device)
        self.config = loaded.config
        self.optimized = optimize
        self.name = "torch" if optimize else "torch-eager"
        model = loaded.model.to(self.device).eval()
        self.model = fuse_for_inference(model) if optimize else model

    def forward_stages(self, x: Tensor) -> DepthStages:
        import torch

        with torch.inference_mode():
            x = x.to(self.device)
            if self.optimized:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.model.forward_stages(x)

    def to_pixels(self, depth: Tensor) -> Tensor:
        return self.model.to_pixels(depth)


class OnnxRuntimeBackend:
    """The network exported to ONNX and run by ONNX Runtime on the CPU.

    ``onnx_model`` (a path or the model's bytes) skips the search of :func:`onnx_session`;
    ``threads`` sets its intra-op threads (default: :func:`~df2net.cpu.inference_threads`).
    """

    name = "onnxruntime"

    def __init__(
        self,
        loaded: LoadedModel | WeightsFile,
        onnx_model: str | Path | bytes | None = None,
        threads: int | None = None,
    ) -> None:
        self.config = loaded.config
        if onnx_model is None:
            self.session, self.source = onnx_session(loaded, threads)
        else:
            self.session = _new_session(onnx_model, threads)
            self.source = "<bytes>" if isinstance(onnx_model, bytes) else str(onnx_model)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def forward_stages(self, x: Tensor) -> DepthStages:
        import torch

        from df2net.model.df2net import DepthStages

        feed = {self.input_name: np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())}
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, feed)))
        return DepthStages(*(torch.from_numpy(outputs[name]) for name in ("dense", "fine", "finer")))

    def to_pixels(self, depth: Tensor) -> Tensor:
        return depth * self.config.depth_scale + self.config.depth_offset

    def stage_pixels(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The depth after each stage, ``{stage: (B, S, S)}`` float32 in pixels at the input's
        size, for ``x (B, 3, S, S)`` float32, without PyTorch: :meth:`forward_stages` then
        :meth:`to_pixels` in numpy (the same float32 steps, so the same values)."""
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: x})))
        scale, offset = self.config.depth_scale, self.config.depth_offset
        return {name: (outputs[name] * scale + offset)[:, 0] for name in ("dense", "fine", "finer")}


def onnxruntime_available() -> bool:
    """Whether the optional ``onnxruntime`` package can be imported."""
    try:
        _import_onnxruntime()
    except Df2netError:
        return False
    return True


def resolve_backend(backend: str, device: str | torch.device = "cpu") -> str:
    """The concrete backend for a requested one: ``auto`` -> ``onnxruntime`` or ``torch``.

    Raises :class:`~df2net.errors.Df2netError` (one line) for an unknown name, for
    ``onnxruntime`` on a device other than the CPU, or when ``onnxruntime`` is missing.
    """
    if backend not in BACKENDS:
        raise Df2netError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    on_cpu = _device_type(device) == "cpu"
    if backend == "auto":
        return "onnxruntime" if on_cpu and onnxruntime_available() else "torch"
    if backend == "onnxruntime":
        if not on_cpu:
            raise Df2netError(f"the onnxruntime backend runs on the CPU only, not on {device}")
        _import_onnxruntime()
    return backend


_BACKENDS: dict[tuple, Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def make_backend(
    loaded: LoadedModel | WeightsFile,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> Backend:
    """The backend ``backend`` for ``loaded``, built once per process (same weights, device and
    threads).

    Decides the inference threads (:func:`~df2net.cpu.inference_threads`; PyTorch's with
    :func:`~df2net.cpu.set_inference_threads`) on first use; ``threads`` gives the network that
    many instead (ONNX Runtime's session; PyTorch's are the process's).
    """
    name = resolve_backend(backend, device)
    if name == "torch":
        import torch

        set_inference_threads(threads)
        device = str(torch.device(device))
    else:
        inference_threads()
    keep_freed_memory()
    sha = str(loaded.metadata.get("sha256", ""))
    key = (name, str(device), sha, str(loaded.path), threads) if sha else None
    with _BACKENDS_LOCK:
        if key is not None and key in _BACKENDS:
            return _BACKENDS[key]
        made: Backend
        if name == "onnxruntime":
            try:
                made = OnnxRuntimeBackend(loaded, threads=threads)
            except Df2netError:
                if backend != "auto":
                    raise
                made = TorchBackend(loaded, device)  # e.g. onnxruntime without the exporter's packages
        else:
            made = TorchBackend(loaded, device)
        if key is not None:
            _BACKENDS[key] = made
    return made


def cache_dir() -> Path:
    """Where df2net caches derived files: ``$DF2NET_CACHE_DIR``, else ``$XDG_CACHE_HOME/df2net``
    (``~/.cache/df2net``)."""
    explicit = os.environ.get("DF2NET_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "df2net"


def onnx_session(loaded: LoadedModel | WeightsFile, threads: int | None = None):
    """An ONNX Runtime session of ``loaded``'s network (``threads`` intra-op threads, default
    :func:`~df2net.cpu.inference_threads`), and where its model came from.

    Tried in turn: ``W.onnx`` beside ``W.safetensors``, then the cached export, each used only
    if its metadata names the same weights (sha256); else the network is exported now (PyTorch)
    and the export cached (kept in memory only when the cache is not writable).
    """
    from df2net import __version__
    from df2net.onnx_export import ONNX_FORMAT

    sha = str(loaded.metadata.get("sha256", ""))
    versions = f"{ONNX_FORMAT}-df2net{__version__}-torch{torch_version()}"
    cached = cache_dir() / "onnx" / f"{loaded.config.name}-{sha[:16]}-{versions}.onnx"
    if sha:
        candidates = [Path(loaded.path).with_suffix(".onnx")] if loaded.path is not None else []
        for path in [*candidates, cached]:
            if path.is_file():
                try:
                    session = _new_session(path, threads)
                except Exception:  # unreadable or foreign: not a match
                    continue
                if session.get_modelmeta().custom_metadata_map.get("df2net_weights_sha256") == sha:
                    return session, str(path)
    from df2net.onnx_export import export_onnx

    data = export_onnx(loaded)
    if sha:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp:
                Path(tmp).write_bytes(data)
            return _new_session(cached, threads), str(cached)
        except OSError:
            pass
    return _new_session(data, threads), "<exported in memory>"


def _new_session(model: str | Path | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session with df2net's threads and all graph optimisations."""
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or inference_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    # Idle workers sleep instead of spinning: on a shared or small machine the spinning thread
    # steals the core the rest of the path (numpy, PNG) and other processes need; measured on
    # 2 busy cores, the network was faster without it too (benchmarks/README.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _device_type(device: object) -> str:
    """``"cpu"`` or ``"cuda"`` ... of a device or its name (``"cuda:1"``), without PyTorch."""
    return str(getattr(device, "type", device)).split(":", 1)[0]


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise Df2netError(_ORT_MISSING) from None
    return onnxruntime
