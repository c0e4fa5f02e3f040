"""The DF2Net network (D-Net, F-Net, Fr-Net and their chain) and its weights.

``build_model(name)`` makes a network from a named :class:`ModelConfig`; ``load_model(path)``
loads one from a ``.safetensors`` file written by :func:`save_weights` or
:func:`convert_checkpoint` (``open_model(path)`` reads it without PyTorch, the network built on
first use). Only :mod:`df2net.model.weights` touches files.

The names below are imported on first use, so that importing a submodule without PyTorch
(:mod:`df2net.model.config`, :mod:`df2net.model.weights`) does not import the network's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from df2net.model.config import MODEL_CONFIGS, ModelConfig
    from df2net.model.df2net import DepthStages, DF2Net, build_model
    from df2net.model.dnet import DNet
    from df2net.model.fnet import FNet
    from df2net.model.frnet import FinerScales, FrNet
    from df2net.model.weights import (
        LoadedModel,
        WeightsFile,
        convert_checkpoint,
        default_weights_path,
        load_model,
        load_weights,
        open_model,
        read_weights,
        save_weights,
    )

__all__ = [
    "MODEL_CONFIGS",
    "DF2Net",
    "DNet",
    "DepthStages",
    "FNet",
    "FinerScales",
    "FrNet",
    "LoadedModel",
    "ModelConfig",
    "WeightsFile",
    "build_model",
    "convert_checkpoint",
    "default_weights_path",
    "load_model",
    "load_weights",
    "open_model",
    "read_weights",
    "save_weights",
]

#: Where the names above are found, those without PyTorch first.
_SUBMODULES: tuple[str, ...] = ("config", "weights", "df2net", "dnet", "fnet", "frnet")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for submodule in _SUBMODULES:
            module = importlib.import_module(f"{__name__}.{submodule}")
            if hasattr(module, name):
                return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
