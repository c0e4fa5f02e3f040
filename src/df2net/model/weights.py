"""Saving, loading and converting DF2Net weights: the only place that touches weight files.

Weights are ``.safetensors`` files. Their ``__metadata__`` holds JSON strings:

- ``format``: ``"df2net.weights/1"``;
- ``config``: the :class:`~df2net.model.df2net.ModelConfig` as a dict, from which the model is
  rebuilt; ``input_size``, ``depth_scale``, ``depth_offset``: copies of its fields, for readers;
- ``recipe``: how the weights were made (training settings, or the conversion source), or null;
- ``df2net_version``: the version that wrote the file;
- ``sha256``: the digest of the tensor payload (see :func:`tensor_digest`), checked on load;
- any ``extra`` entries given to :func:`save_weights`.

The original release (``DF2Net.pth.tar``, a pickled ``torch.nn.DataParallel`` state dict) is read
only by :func:`convert_checkpoint`, with ``torch.load(weights_only=True)``.

:func:`read_weights` reads and checks a file without PyTorch (the header, the config, the sha256
of the tensors' bytes) and builds the network only when it is asked for: running an exported
network (ONNX Runtime) needs no more. PyTorch is imported by the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from df2net.errors import WeightsError
from df2net.io import atomic_path
from df2net.model.config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor

    from df2net.model.df2net import DF2Net

#: Value of the ``format`` metadata entry.
WEIGHTS_FORMAT: str = "df2net.weights/1"

#: Metadata entries written by :func:`save_weights` itself; ``extra`` may not override them.
RESERVED_KEYS: frozenset[str] = frozenset(
    {"format", "config", "input_size", "depth_scale", "depth_offset", "recipe", "df2net_version", "sha256"}
)

#: The package folder searched by :func:`default_weights_path`.
WEIGHTS_PACKAGE_DIR: str = "weights"

_CHUNK = 1 << 24

#: safetensors' dtype codes: the dtype's name in :func:`tensor_digest` and its bytes per element.
_DTYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 1),
    "U8": ("uint8", 1),
    "I8": ("int8", 1),
    "I16": ("int16", 2),
    "U16": ("uint16", 2),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I32": ("int32", 4),
    "U32": ("uint32", 4),
    "F32": ("float32", 4),
    "I64": ("int64", 8),
    "U64": ("uint64", 8),
    "F64": ("float64", 8),
}


@dataclass(frozen=True)
class LoadedModel:
    """A network ready for inference (eval mode), with the config and metadata it was saved with."""

    model: DF2Net
    config: ModelConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


@dataclass(frozen=True, eq=False)
class WeightsFile:
    """A weights file read and checked without PyTorch: what a :class:`LoadedModel` holds, with
    ``model`` built (PyTorch) on first use.

    ``metadata["sha256"]`` has been checked against the tensors' bytes; whether the tensors fit
    ``config`` is checked when ``model`` is built (:func:`load_weights`).
    """

    config: ModelConfig
    metadata: dict[str, Any]
    path: Path
    device: str = "cpu"

    @cached_property
    def model(self) -> DF2Net:
        """The network in eval mode on ``device``, loaded strictly from :attr:`path`."""
        loaded = load_weights(self.path, self.device)
        if loaded.config != self.config or loaded.metadata.get("sha256") != self.metadata.get("sha256"):
            raise WeightsError(f"{self.path}: the file changed since it was read")
        return loaded.model


def tensor_digest(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 (hex) of a tensor payload, independent of how the file lays it out.

    Tensors are taken in sorted name order; for each, the digest reads the UTF-8 name, the dtype
    name (``float32`` ...), the shape (``"64,3,4,4"``), each followed by a NUL byte, then the
    tensor's bytes in C order (native, little-endian on every platform we run on).
    """
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        _digest_tensor(digest, name, str(t.dtype).removeprefix("torch."), t.shape, data)
    return digest.hexdigest()


def _digest_tensor(digest: Any, name: str, dtype: str, shape: Sequence[int], data: bytes | memoryview) -> None:
    """Add one tensor to a :func:`tensor_digest`: its name, dtype name and shape, then its bytes."""
    digest.update(f"{name}\0{dtype}\0{','.join(str(s) for s in shape)}\0".encode())
    digest.update(data)


def save_weights(
    model: DF2Net,
    config: ModelConfig,
    path: str | Path,
    recipe: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    *,
    half: bool = False,
) -> Path:
    """Write ``model``'s state dict to ``path`` (``.safetensors``), atomically, with its metadata.

    Args:
        model: the network; its state dict must fit ``config``.
        config: the config to record (what :func:`load_weights` rebuilds).
        path: the file to write.
        recipe: how the weights were made (JSON-serialisable), or None.
        extra: more metadata entries, each stored JSON-encoded under its own key.
        half: store floating-point tensors as float16 (about half the size); default float32.

    Returns the path written. Raises ValueError for an ``extra`` key that is reserved or a value
    that is not JSON-serialisable.
    """
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, Tensor] = {}
    for name, value in model.state_dict().items():
        t = value.detach().to("cpu")
        if half and t.is_floating_point():
            t = t.to(torch.float16)
        tensors[name] = t.contiguous().clone()
    from df2net import __version__

    entries: dict[str, Any] = {
        "format": WEIGHTS_FORMAT,
        "config": asdict(config),
        "input_size": config.input_size,
        "depth_scale": config.depth_scale,
        "depth_offset": config.depth_offset,
        "recipe": recipe,
        "df2net_version": __version__,
        "sha256": tensor_digest(tensors),
    }
    for key, value in (extra or {}).items():
        if key in RESERVED_KEYS:
            raise ValueError(f"metadata key {key!r} is reserved")
        entries[key] = value
    metadata = {key: json.dumps(value, sort_keys=True) for key, value in entries.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_weights(path: str | Path, device: str = "cpu") -> WeightsFile:
    """Read a weights file's config and metadata and check its digest, without PyTorch.

    Returns a :class:`WeightsFile` whose network is built on ``device`` on first use. Raises
    :class:`~df2net.errors.WeightsError` (one line naming the file) when the file is missing, is
    not a df2net ``.safetensors`` file, was modified (digest mismatch) or states a bad config.
    """
    path = Path(path)
    config, metadata, _ = _read_checked(path)
    return WeightsFile(config=config, metadata=metadata, path=path, device=str(device))


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the network described by a weights file, check its digest and load it strictly.

    Returns a :class:`LoadedModel` in eval mode on ``device``. Raises
    :class:`~df2net.errors.WeightsError` (one line naming the file) when the file is missing,
    is not a df2net ``.safetensors`` file, was modified (digest mismatch) or does not fit the
    config it states.
    """
    from safetensors.torch import load as load_tensors

    from df2net.model.df2net import build_model

    path = Path(path)
    config, metadata, data = _read_checked(path)
    try:
        tensors = load_tensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise WeightsError(_unreadable(path, exc)) from exc
    model = build_model(config)
    _load_strict(model, tensors, f"{path}: weights do not fit model config {config.name!r}")
    model.to(device).eval()
    return LoadedModel(model=model, config=config, metadata=metadata, path=path)


def _read_checked(path: Path) -> tuple[ModelConfig, dict[str, Any], bytes]:
    """A weights file's config, decoded metadata and bytes, its digest and config checked."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        data = path.read_bytes()
        raw_metadata, tensors, start = _safetensors_header(data)
    except (OSError, ValueError) as exc:
        raise WeightsError(_unreadable(path, exc)) from exc
    metadata = {key: _decode(value) for key, value in raw_metadata.items()}
    if "config" not in metadata or "sha256" not in metadata:
        raise WeightsError(f"{path}: not df2net weights (no 'config' or 'sha256' in the metadata)")
    try:
        if not isinstance(metadata["config"], dict):
            raise ValueError("it is not a JSON object")
        config = ModelConfig.from_dict(metadata["config"])
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: bad model config in the metadata: {_one_line(exc)}") from exc
    if "input_size" in metadata and metadata["input_size"] != config.input_size:
        raise WeightsError(
            f"{path}: metadata input_size {metadata['input_size']} contradicts "
            f"config input_size {config.input_size}"
        )
    digest = hashlib.sha256()
    view = memoryview(data)
    for name in sorted(tensors):
        dtype, shape, begin, end = tensors[name]
        _digest_tensor(digest, name, dtype, shape, view[start + begin : start + end])
    if digest.hexdigest() != metadata["sha256"]:
        raise WeightsError(f"{path}: sha256 of the tensors does not match the metadata (corrupted or modified)")
    return config, metadata, data


def _safetensors_header(data: bytes) -> tuple[dict[str, str], dict[str, tuple[str, list[int], int, int]], int]:
    """The header of a ``.safetensors`` file's bytes: its ``__metadata__``, each tensor's
    ``(dtype name, shape, begin, end)`` (byte offsets into the data) and where the data starts.

    The layout: an 8-byte little-endian header length, the header (JSON), the tensors' bytes.
    Raises ValueError when the bytes do not hold one.
    """
    if len(data) < 8:
        raise ValueError("shorter than a header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError(f"header of {size} bytes in a file of {len(data)}")
    header = json.loads(data[8 : 8 + size])  # a JSONDecodeError is a ValueError
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    available = len(data) - 8 - size
    tensors = {}
    for name, entry in header.items():
        try:
            dtype, width = _DTYPES[entry["dtype"]]
            shape = [int(n) for n in entry["shape"]]
            begin, end = (int(n) for n in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad header entry for {name!r}") from exc
        if not 0 <= begin <= end <= available or end - begin != width * math.prod(shape):
            raise ValueError(f"bad data offsets for {name!r}")
        tensors[name] = (dtype, shape, begin, end)
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("the metadata are not strings")
    return metadata, tensors, 8 + size


def _unreadable(path: Path, exc: BaseException) -> str:
    """The one-line message for a file that is no ``.safetensors`` file."""
    hint = " (an original DF2Net checkpoint must be converted first: df2net convert-checkpoint)"
    return f"{path}: not a readable .safetensors file: {_one_line(exc)}{hint}"


def convert_checkpoint(old_path: str | Path, new_path: str | Path, *, half: bool = False) -> Path:
    """Convert the original DF2Net checkpoint (``DF2Net.pth.tar``) to df2net ``.safetensors``.

    Accepts a dict holding ``state_dict`` or a bare state dict, with or without the ``module.``
    prefix of ``torch.nn.DataParallel``. Batch-norm ``num_batches_tracked`` counters (absent from
    checkpoints saved before PyTorch 0.4.1) are filled with 0 when missing; they only matter for
    ``momentum=None``, which DF2Net does not use. Everything else must match
    ``build_model("original")`` exactly. Returns ``new_path``.
    """
    import torch
    from torch import Tensor

    from df2net.model.df2net import build_model

    old_path = Path(old_path)
    if not old_path.is_file():
        raise WeightsError(f"{old_path}: no such checkpoint file")
    try:
        checkpoint = torch.load(old_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean the same thing here
        raise WeightsError(
            f"{old_path}: cannot be read as a PyTorch checkpoint with weights_only=True: {_one_line(exc)}"
        ) from exc
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{old_path}: holds no state dict of tensors")
    state = {str(name).removeprefix("module."): tensor for name, tensor in state.items()}
    model = build_model("original")
    for name in model.state_dict():
        if name.endswith(".num_batches_tracked") and name not in state:
            state[name] = torch.zeros((), dtype=torch.long)
    _load_strict(model, state, f"{old_path}: not the original DF2Net network")
    recipe = {
        "source": "original DF2Net release (Zeng et al., ICCV 2019), converted",
        "converted_from": old_path.name,
        "converted_from_sha256": _file_sha256(old_path),
    }
    return save_weights(model, model.config, new_path, recipe=recipe, half=half)


def default_weights_path() -> Path | None:
    """The first (by name) ``*.safetensors`` file shipped in the package's ``weights/`` folder, or None."""
    folder = resources.files("df2net").joinpath(WEIGHTS_PACKAGE_DIR)
    if not folder.is_dir():
        return None
    names = sorted(e.name for e in folder.iterdir() if e.name.endswith(".safetensors") and e.is_file())
    return Path(str(folder.joinpath(names[0]))) if names else None


def load_model(weights: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load ``weights``, or the weights shipped with the package when None. Never downloads.

    Raises :class:`~df2net.errors.WeightsError` when no weights are given and none are shipped.
    """
    return load_weights(_weights_path(weights), device=device)


def open_model(weights: str | Path | None = None, device: str = "cpu") -> WeightsFile:
    """:func:`load_model` without PyTorch: :func:`read_weights` of ``weights`` or the shipped file,
    the network built on first use of ``model``."""
    return read_weights(_weights_path(weights), device=device)


def _weights_path(weights: str | Path | None) -> Path:
    """``weights``, or the weights shipped with the package; a WeightsError when there are none."""
    path = Path(weights) if weights is not None else default_weights_path()
    if path is None:
        raise WeightsError(
            "no weights available: none are shipped in the df2net package; pass --weights FILE.safetensors "
            "(the original DF2Net.pth.tar can be converted with `df2net convert-checkpoint`)"
        )
    return path


def _load_strict(model: DF2Net, state: Mapping[str, Tensor], context: str) -> None:
    """``model.load_state_dict(state, strict=True)``, with a one-line WeightsError when it does not fit."""
    problems = _fit_problems(state, model.state_dict())
    if problems:
        raise WeightsError(f"{context}: {problems}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{context}: {_one_line(exc)}") from exc


def _fit_problems(found: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> str:
    """A short description of how ``found`` differs from ``expected`` in names and shapes ('' if not)."""
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    reshaped = [
        f"{name} is {list(found[name].shape)} instead of {list(expected[name].shape)}"
        for name in expected
        if name in found and found[name].shape != expected[name].shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)):
        if items:
            parts.append(f"{len(items)} tensors {label} (e.g. {'; '.join(items[:2])})")
    return ", ".join(parts)


def _decode(value: str) -> Any:
    """A metadata value: JSON-decoded, or the raw string if it is not JSON."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def kept_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a file made from another keeps of its metadata: the relief network's gain scan."""
    return {k: metadata[k] for k in ("gain_calibration",) if k in metadata}


def reconfigure_weights(source: str | Path, target: str | Path, config: ModelConfig | str) -> Path:
    """Copy a weights file under another config of the same parameter shapes.

    The stages train at the sizes that are cheap for them (D-Net and F-Net on 256² crops, with
    ``input_size = dense_size = 256``) and ship in the config they run in at inference (the
    "cpu" config: 512² input, D and F at 256²). The tensors are the same; only the sizes the
    network is run at change. The relief network's gain scan (``gain_calibration``) is kept.
    Raises :class:`WeightsError` if the shapes do not fit.
    """
    from df2net.model.df2net import build_model

    loaded = load_weights(source)
    model = build_model(config)
    _load_strict(model, loaded.model.state_dict(), f"{source} -> config {model.config.name!r}")
    recipe = loaded.metadata.get("recipe")
    extra = {"reconfigured_from": {"file": Path(source).name, "config": asdict(loaded.config)}, **kept_metadata(loaded.metadata)}
    return save_weights(model, model.config, target, recipe=recipe, extra=extra)


def interpolate_weights(
    new: str | Path, old: str | Path, alpha: float, target: str | Path, keep_prefixes: tuple[str, ...] = ("FrNet.",)
) -> Path:
    """Write the weight-space blend ``alpha * new + (1 - alpha) * old`` of two files of one network.

    Meant for a fine-tuned file and the one it started from (WiSE-FT-style): between the two, a
    fine-tune's gain (here: D- and F-Net asked to ignore albedo-only marks) can be traded against
    what it cost elsewhere without training again. Floating-point tensors are blended (batch-norm
    running statistics included); integer buffers and every tensor whose name starts with one of
    ``keep_prefixes`` (default: Fr-Net) come from ``new``, as do the config and the recipe.
    Raises :class:`WeightsError` if the files' tensors differ in names or shapes.
    """
    import torch

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    a, b = load_weights(new), load_weights(old)
    sa, sb = _same_network(a, b, new, old)
    blended = {
        k: v if k.startswith(keep_prefixes) or not torch.is_floating_point(v) else alpha * v + (1.0 - alpha) * sb[k]
        for k, v in sa.items()
    }
    a.model.load_state_dict(blended)
    names = {"new": Path(new).name, "old": Path(old).name, "old_sha256": b.metadata.get("sha256")}
    extra = {"interpolated": {**names, "alpha": alpha}}
    return save_weights(a.model, a.config, target, recipe=a.metadata.get("recipe"), extra=extra)


def transplant_weights(base: str | Path, donor: str | Path, stages: Sequence[str], target: str | Path) -> Path:
    """Write ``base`` with the tensors of ``stages`` (of ``"dense"``, ``"fine"``, ``"finer"``) taken from ``donor``.

    For chaining stages trained apart: say a D-Net and F-Net trained at 256² into the file whose
    relief Fr-Net and config ship (``stages=("dense", "fine")``), or an F-Net into a D-Net run's
    file to start the next F run from. The result keeps ``base``'s config and its
    ``gain_calibration``; its recipe is the donor's (the run that trained what moved) and
    ``metadata["transplanted"]`` names both files and the stages. Raises :class:`WeightsError` if
    the files' tensors differ in names or shapes, ValueError for an unknown stage.
    """
    unknown = set(stages) - {"dense", "fine", "finer"}
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; choose from dense, fine, finer")
    a, b = load_weights(base), load_weights(donor)
    sa, sb = _same_network(a, b, base, donor)
    from df2net.model.df2net import stage_of

    a.model.load_state_dict({k: sb[k] if stage_of(k) in stages else v for k, v in sa.items()})
    extra: dict[str, Any] = {
        "transplanted": {"base": Path(base).name, "donor": Path(donor).name, "stages": sorted(set(stages))},
        **kept_metadata(a.metadata),
    }
    return save_weights(a.model, a.config, target, recipe=b.metadata.get("recipe"), extra=extra)


def _same_network(a: LoadedModel, b: LoadedModel, a_path: str | Path, b_path: str | Path) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The two models' state dicts; raises :class:`WeightsError` unless their tensors match in names and shapes."""
    sa, sb = a.model.state_dict(), b.model.state_dict()
    if set(sa) != set(sb) or any(sa[k].shape != sb[k].shape for k in sa):
        raise WeightsError(f"{a_path} and {b_path} are not the same network: their tensors differ")
    return sa, sb
