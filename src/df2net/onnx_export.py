"""Exporting df2net weights to ONNX, for the ``onnxruntime`` backend and for other runtimes.

``df2net export-onnx [--weights W] OUT.onnx`` writes one self-contained ``.onnx`` file: input
``x`` ``(B, 3, S, S)`` float32 (the masked crop in [-1, 1], ``S`` = the config's ``input_size``,
``B`` free), outputs ``dense``, ``fine`` and ``finer``, each ``(B, 1, S, S)`` in network units
(``pixels = out * depth_scale + depth_offset``, see ``docs/conventions.md``). Batch norms are
folded first (:func:`~df2net.model.optimize.fuse_for_inference`). The file's metadata
(``metadata_props``) names the weights it came from (``df2net_weights_sha256``), the model
config, the depth scale and offset and the versions that wrote it.

Exporting needs the optional packages ``onnx`` and ``onnxscript`` (``pip install 'df2net[onnx]'``).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from contextlib import redirect_stdout
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from df2net.errors import Df2netError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from df2net.model.weights import LoadedModel, WeightsFile

__all__ = ["ONNX_FORMAT", "STAGE_OUTPUTS", "export_module", "export_onnx", "onnx_metadata", "register"]

#: Output names of an exported network, in order.
STAGE_OUTPUTS: tuple[str, str, str] = ("dense", "fine", "finer")

#: ONNX opset of the files we write.
OPSET: int = 18

#: Version of the exported graph (inputs, outputs, what is folded); part of the cache's file names.
ONNX_FORMAT: str = "df2net.onnx-3"

_MISSING_HINT = "install the optional ONNX packages: pip install 'df2net[onnx]'"


def _stages_module(model: torch.nn.Module) -> torch.nn.Module:
    """Wrap a DF2Net so that its forward returns the tuple ``(dense, fine, finer)``."""
    import torch

    class Stages(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            stages = self.net.forward_stages(x)
            return stages.dense, stages.fine, stages.finer

    return Stages(model).eval()


def export_module(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    output_names: Sequence[str],
    metadata: dict[str, str] | None = None,
) -> bytes:
    """The ONNX model of ``module`` traced on ``example_inputs``, batch dimension free, as bytes.

    Uses PyTorch's ``torch.export``-based exporter (``dynamo=True``) and inlines the weights, so
    the result is one self-contained model. ``metadata`` goes into ``metadata_props``.
    Raises :class:`~df2net.errors.Df2netError` when ``onnx`` or ``onnxscript`` is missing.
    """
    import torch

    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError:
            raise Df2netError(f"exporting to ONNX needs the {package} package; {_MISSING_HINT}") from None
    import onnx

    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = {name: {0: batch} for name in input_names}
    quiet = logging.getLogger("torch.onnx")  # e.g. "torchvision is not installed. Skipping ..."
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module.eval(),
                tuple(example_inputs),
                dynamo=True,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=tuple(dynamic[name] for name in input_names),
                opset_version=OPSET,
                optimize=True,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "df2net"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def onnx_metadata(loaded: LoadedModel | WeightsFile) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file exported from ``loaded``."""
    import torch

    from df2net import __version__

    config = loaded.config
    return {
        "df2net_format": ONNX_FORMAT,
        "df2net_weights_sha256": str(loaded.metadata.get("sha256", "")),
        "df2net_config": json.dumps(asdict(config), sort_keys=True),
        "input_size": str(config.input_size),
        "depth_scale": repr(config.depth_scale),
        "depth_offset": repr(config.depth_offset),
        "outputs": "dense, fine, finer: (B, 1, S, S) network units; pixels = out * depth_scale + depth_offset",
        "df2net_version": __version__,
        "torch_version": torch.__version__,
    }


def export_onnx(loaded: LoadedModel | WeightsFile, path: str | Path | None = None) -> bytes:
    """Export ``loaded`` (batch norms folded) to ONNX; write it to ``path`` (atomically) if given.

    Returns the model's bytes. See the module docstring for the inputs, outputs and metadata.
    """
    import torch

    from df2net.io import atomic_path
    from df2net.model.optimize import fuse_for_inference

    size = loaded.config.input_size
    fused = fuse_for_inference(loaded.model.to("cpu"), channels_last=False)
    # A batch of 2: torch.export specialises dimensions of size 1, and the batch must stay free.
    example = torch.zeros(2, 3, size, size)
    data = export_module(_stages_module(fused), (example,), ("x",), STAGE_OUTPUTS, onnx_metadata(loaded))
    if path is not None:
        with atomic_path(Path(path)) as tmp:
            Path(tmp).write_bytes(data)
    return data


def _export_onnx_command(args: argparse.Namespace) -> int:
    from df2net.model.weights import load_model

    try:
        loaded = load_model(args.weights)
        export_onnx(loaded, args.output)
    except Df2netError as exc:
        print(f"df2net: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} (from {loaded.path}, config {loaded.config.name!r})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export-onnx`` subcommand to the ``df2net`` command."""
    parser = sub.add_parser(
        "export-onnx",
        help="export the network to ONNX (for onnxruntime and other runtimes)",
        description="Export df2net weights to one self-contained ONNX file (needs df2net[onnx]).",
    )
    parser.add_argument("output", metavar="OUT.onnx", help="the .onnx file to write")
    parser.add_argument("--weights", metavar="W", help="weights (.safetensors); default: the shipped ones")
    parser.set_defaults(func=_export_onnx_command)
