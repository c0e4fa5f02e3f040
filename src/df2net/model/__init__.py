"""The DF2Net network (D-Net, F-Net, Fr-Net and their chain) and its weights.

``build_model(name)`` makes a network from a named :class:`ModelConfig`; ``load_model(path)``
loads one from a ``.safetensors`` file written by :func:`save_weights` or
:func:`convert_checkpoint`. Only :mod:`df2net.model.weights` touches files.
"""

from __future__ import annotations

from df2net.model.df2net import MODEL_CONFIGS, DepthStages, DF2Net, ModelConfig, build_model
from df2net.model.dnet import DNet
from df2net.model.fnet import FNet
from df2net.model.frnet import FinerScales, FrNet
from df2net.model.weights import (
    LoadedModel,
    convert_checkpoint,
    default_weights_path,
    load_model,
    load_weights,
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
    "build_model",
    "convert_checkpoint",
    "default_weights_path",
    "load_model",
    "load_weights",
    "save_weights",
]
