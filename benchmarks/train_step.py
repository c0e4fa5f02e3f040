"""Time one training step of the dense and fine stages on CPU, by memory layout and precision.

Run by hand (not a test):

    python benchmarks/train_step.py [--weights W] [--stages dense fine] [--rounds 3] [--batch 8] [--threads 2]

A step is what :class:`df2net.train.loop.Trainer` does per batch, without the data: the stage's
forward (:class:`~df2net.train.stages.StageNet`), a depth L1 and a normal loss, the backward pass
and an Adam update. Variants, run in turns (round 1 of every variant, then round 2 ...) so a busy
machine slows them alike:

- ``fp32`` (the baseline): weights and input in the default NCHW layout;
- ``fp32 channels-last``: weights and input NHWC (``TrainConfig.channels_last``, the default);
- ``bf16 channels-last``: the same under ``torch.autocast("cpu", bfloat16)`` (``TrainConfig.amp``),
  printed with its depth difference: a deep U-Net in bf16 moves the depth by about a pixel RMS
  against fp32, and a net trained that way runs in fp32 at inference (tried on D-Net, recipe
  step 18, it drifted D's output level and was not shipped).

Prints the median seconds per step of each, the ratio to the baseline, and the largest depth
difference of each variant's forward (eval mode, before any step) against the baseline's (px
at the stage's grid).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from df2net.model import build_model, load_weights
from df2net.train.losses import depth_l1, normal_loss
from df2net.train.stages import StageNet, set_stage_modes, stage_parameters, stage_side

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("fp32", "fp32 channels-last", "bf16 channels-last")


def _layout(variant: str) -> torch.memory_format:
    return torch.channels_last if "channels-last" in variant else torch.contiguous_format


def _setup(weights: Path | None, stage: str, variant: str) -> tuple[StageNet, torch.optim.Optimizer]:
    model = load_weights(weights).model if weights else build_model("cpu")
    model.to(memory_format=_layout(variant))
    params = stage_parameters(model, stage)
    set_stage_modes(model, stage)
    for module in model.modules():  # no decoder dropout (as the shipped recipe trains): outputs comparable
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
    return StageNet(model, stage), torch.optim.Adam(params, lr=1e-5)


def _step(net: StageNet, opt: torch.optim.Optimizer, stage: str, variant: str, x: torch.Tensor, target: torch.Tensor,
          mask: torch.Tensor, scale: float) -> float:
    """Seconds of one training step."""
    x = x.contiguous(memory_format=_layout(variant))
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.startswith("bf16")):
        out = net(x)[stage]
    out = out.float()
    loss = depth_l1(out, target, mask).mean() + normal_loss(out * scale, target * scale, mask).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def _inference(net: StageNet, stage: str, variant: str, x: torch.Tensor) -> torch.Tensor:
    """The stage's depth in eval mode (running batch-norm statistics: train mode's batch statistics
    of a deep U-Net's 1x1 bottleneck would amplify rounding differences)."""
    net.model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.startswith("bf16")):
        out = net(x.contiguous(memory_format=_layout(variant)))[stage].float()
    set_stage_modes(net.model, stage)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ROOT / "src" / "df2net" / "weights" / "df2net_cpu.safetensors"
    parser.add_argument("--weights", type=Path, default=default if default.exists() else None)
    parser.add_argument("--stages", nargs="+", default=["dense", "fine"], choices=["dense", "fine"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"| stage | variant | s / step (median of {args.rounds}) | x fp32 | max depth diff px |")
    print("|---|---|---|---|---|")
    for stage in args.stages:
        nets = {}
        for v in VARIANTS:
            nets[v] = _setup(args.weights, stage, v)
        cfg = nets["fp32"][0].model.config
        side = stage_side(stage, cfg, cfg.input_size)  # D-Net's and F-Net's grid
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(args.batch, 3, side, side, generator=gen) * 2 - 1
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
        mask = ((yy**2 + xx**2) < 0.7).float().expand(args.batch, 1, side, side).contiguous()
        target = (0.4 * torch.sqrt(torch.clamp(1 - yy**2 - xx**2, min=0))).expand_as(mask).contiguous()
        scale = cfg.depth_scale * side / cfg.input_size
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        outs: dict[str, torch.Tensor] = {}
        for v in VARIANTS:
            outs[v] = _inference(nets[v][0], stage, v, x)
            _step(*nets[v], stage, v, x, target, mask, scale)  # warm-up: oneDNN picks its kernels on the first call
        for _ in range(args.rounds):
            for v in VARIANTS:
                times[v].append(_step(*nets[v], stage, v, x, target, mask, scale))
        base = statistics.median(times["fp32"])
        for v in VARIANTS:
            med = statistics.median(times[v])
            diff = float((outs[v] - outs["fp32"]).abs().max()) * scale
            print(f"| {stage} | {v} | {med:.2f} | {base / med:.2f} | {diff:.2e} |")


if __name__ == "__main__":
    main()
