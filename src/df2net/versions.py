"""Versions of the packages df2net records (``metadata.json``, the ONNX cache's file names),
read without importing them."""

from __future__ import annotations

import functools
from importlib import metadata

__all__ = ["torch_version"]


@functools.cache
def torch_version() -> str:
    """PyTorch's version, ``torch.__version__``, read from its installed package's metadata so
    that asking does not import it (about 1 s); imported only where there is no such package."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:  # e.g. a source tree on the path
        import torch

        return torch.__version__
