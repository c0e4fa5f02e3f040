"""df2net: one photo of a face in, a detailed 3D face out (after DF2Net, ICCV 2019)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Reconstructor", "FaceResult", "load_model", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from df2net.model.weights import load_model
    from df2net.reconstruct import FaceResult, Reconstructor


def __getattr__(name: str) -> Any:
    # Lazy so that `df2net --version` and light imports do not pay for torch and dlib.
    if name in ("Reconstructor", "FaceResult"):
        from df2net import reconstruct

        return getattr(reconstruct, name)
    if name == "load_model":
        from df2net.model.weights import load_model

        return load_model
    raise AttributeError(name)
