"""How fast df2net's inference is against the original DF2Net network, all measured in one run.

Run by hand (not a test); about five minutes on 2 CPU cores:

    python benchmarks/speed.py [--weights W.safetensors] [--repeats 5] [--demo-dir DIR] [--batch 4]

It builds, in this process, the original DF2Net architecture at its original size
(``build_model("original")``: fp32, plain eager PyTorch, batch 1, 512x512, random weights) and
df2net's default inference path (the shipped weights, or ``--weights``; without either, random
``"cpu"``-config weights, with a warning: timing does not depend on the weight values), then
prints:

1. each network stage (D, F, Fr) and the whole network: median, min and max seconds over
   ``--repeats`` runs, for the original, for our weights in plain eager PyTorch and for each of
   our optimised backends (``torch``: batch norms folded, channels-last; ``onnxruntime`` when
   installed), with the ratio ours / original;
2. the whole path photo -> mesh + preview, step by step (load, detection + landmarks, crop,
   network, normals, mesh, each file written), for the original network and for ours;
3. peak resident memory (``ru_maxrss``) of a fresh process per configuration running that path
   (with its cold-start times: imports, loading, first photo);
4. how far the optimised depths are from the plain eager run of the same weights: max |diff|
   inside the mask over the depth range inside the mask (must stay within 1e-3);
5. faces per second on the demo photos (``--demo-dir``, default ``../shared/data/df2net_demo``):
   the network alone at batch 1 and at ``--batch``, and the whole path with every file.

Every comparison is measured interleaved (A, B, A, B, ...) in the same run and summarised by
medians, because the machine may be shared: absolute times move with the load, ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEMO_DIR = (ROOT / ".." / "shared" / "data" / "df2net_demo").resolve()
DEFAULT_PHOTO = ROOT / "src" / "df2net" / "samples" / "astronaut.png"

#: The steps of the whole path, in order, as printed.
PATH_STEPS = (
    "load",
    "detect+landmarks",
    "crop",
    "network",
    "normals",
    "mesh",
    "write depth npy",
    "write depth png16",
    "write normals png",
    "write crop png",
    "write ply",
    "write obj",
    "write glb",
    "write preview",
    "write metadata",
)
#: outputs._WRITERS key of each "write ..." step.
_WRITER_OF = {
    "write depth npy": "depth",
    "write depth png16": "depth16",
    "write normals png": "normals",
    "write crop png": "crop",
    "write ply": "ply",
    "write obj": "obj",
    "write glb": "glb",
    "write preview": "preview",
}


# --------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------


def _clock(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _stats(times: list[float]) -> tuple[float, float, float]:
    return statistics.median(times), min(times), max(times)


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Time every function ``repeats`` times, one call of each in turn (A, B, A, B ...)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_clock(fn))
    return times


# --------------------------------------------------------------------------------------------
# The networks
# --------------------------------------------------------------------------------------------


def _our_weights(path: str | None) -> tuple[Path, str]:
    """Our weights file and a note on where it came from (random "cpu" weights if none)."""
    import torch

    from df2net.model.df2net import build_model
    from df2net.model.weights import default_weights_path, save_weights

    if path:
        return Path(path), "given"
    shipped = default_weights_path()
    if shipped is not None:
        return shipped, "shipped"
    print(
        "WARNING: no weights shipped in src/df2net/weights/ and no --weights given: timing random "
        '"cpu"-config weights (speed does not depend on the values; depth differences are relative '
        "to the small depth range of an untrained network)",
        file=sys.stderr,
    )
    torch.manual_seed(0)
    model = build_model("cpu").eval()
    out = Path(tempfile.mkdtemp(prefix="df2net-speed-")) / "random_cpu.safetensors"
    save_weights(model, model.config, out, recipe={"note": "random initialisation, benchmark only"})
    return out, "random"


def _original_loaded():
    """The original architecture at its original size with random weights, as a LoadedModel."""
    import torch

    from df2net.model.df2net import build_model
    from df2net.model.weights import LoadedModel

    torch.manual_seed(0)
    model = build_model("original").eval()
    return LoadedModel(model=model, config=model.config, metadata={}, path=None)


@dataclass
class StageRunners:
    """Callables that run stage D, F and Fr and the whole network of one configuration."""

    name: str
    fns: dict[str, Callable[[], object]] = field(default_factory=dict)


def _torch_stage_runners(name: str, model, x, channels_last: bool) -> StageRunners:
    """Stage runners of a DF2Net module in PyTorch on the input ``x`` (1, 3, S, S)."""
    import torch
    import torch.nn.functional as F

    cfg = model.config
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.inference_mode():
        x = x.contiguous(memory_format=fmt)
        xd = x if cfg.dense_size == cfg.input_size else F.interpolate(x, size=cfg.dense_size, mode="area")
        xd = xd.contiguous(memory_format=fmt)
        dense = model.dense_depth(xd).contiguous(memory_format=fmt)
        fine = model.FNet(dense, xd)
        if cfg.dense_size != cfg.input_size:
            fine = F.interpolate(fine, size=cfg.input_size, mode="bilinear", align_corners=False)
        fine = fine.contiguous(memory_format=fmt)

    def run(fn: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode():
                return fn()

        return call

    return StageRunners(
        name,
        {
            "D": run(lambda: model.dense_depth(xd)),
            "F": run(lambda: model.FNet(dense, xd)),
            "Fr": run(lambda: model.FrNet(fine, x)),
            "whole": run(lambda: model.forward_stages(x)),
        },
    )


def _onnx_stage_runners(name: str, loaded, backend, x) -> StageRunners:
    """Stage runners of ONNX Runtime: each stage exported on its own, and the whole backend."""
    import torch
    import torch.nn.functional as F

    from df2net.backends import _new_session
    from df2net.model.optimize import fuse_for_inference
    from df2net.onnx_export import export_module

    cfg = loaded.config
    fused = fuse_for_inference(loaded.model, channels_last=False)

    class Dense(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = fused

        def forward(self, xd: torch.Tensor) -> torch.Tensor:
            return self.net.dense_depth(xd)

    with torch.inference_mode():
        xd = x if cfg.dense_size == cfg.input_size else F.interpolate(x, size=cfg.dense_size, mode="area")
        dense = fused.dense_depth(xd)
        fine = fused.FNet(dense, xd)
        if cfg.dense_size != cfg.input_size:
            fine = F.interpolate(fine, size=cfg.input_size, mode="bilinear", align_corners=False)
    def two(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:  # export with a free batch of 2
        return tuple(torch.cat([t, t]) for t in tensors)

    sessions = {
        "D": (_new_session(export_module(Dense(), two(xd), ("x",), ("depth",))), {"x": xd}),
        "F": (
            _new_session(export_module(fused.FNet, two(dense, xd), ("depth", "colour"), ("fine",))),
            {"depth": dense, "colour": xd},
        ),
        "Fr": (
            _new_session(export_module(fused.FrNet, two(fine, x), ("depth", "colour"), ("detail",))),
            {"depth": fine, "colour": x},
        ),
    }
    fns: dict[str, Callable[[], object]] = {}
    for stage, (session, feed) in sessions.items():
        arrays = {k: v.numpy().copy() for k, v in feed.items()}
        fns[stage] = lambda s=session, a=arrays: s.run(None, a)
    fns["whole"] = lambda: backend.forward_stages(x)
    return StageRunners(name, fns)


# --------------------------------------------------------------------------------------------
# The whole path, step by step
# --------------------------------------------------------------------------------------------


def run_path(backend, config, detector, photo: Path, out_dir: Path) -> tuple[dict[str, float], int]:
    """Photo -> every file of every face, as ``Reconstructor`` and ``FaceResult.save`` do it,
    timing each step. Returns ``({step: seconds}, faces)``."""
    from df2net import outputs
    from df2net.face import crop_face
    from df2net.io import load_image
    from df2net.reconstruct import STAGES, FaceResult, predict_stage_depths

    t: dict[str, float] = {}
    start = time.perf_counter()
    rgb = load_image(photo).rgb
    t["load"] = time.perf_counter() - start

    start = time.perf_counter()
    detections = detector.detect(rgb)
    t["detect+landmarks"] = time.perf_counter() - start
    if not detections:
        raise RuntimeError(f"{photo}: no face found")

    start = time.perf_counter()
    crops = [crop_face(rgb, det, index=i) for i, det in enumerate(detections)]
    t["crop"] = time.perf_counter() - start

    start = time.perf_counter()
    depths = predict_stage_depths(
        backend, config, np.stack([c.image for c in crops]), np.stack([c.mask for c in crops])
    )
    t["network"] = time.perf_counter() - start

    for step in PATH_STEPS[4:]:
        t[step] = 0.0
    for i, crop in enumerate(crops):
        face = FaceResult.from_crop(
            crop, i, str(photo), {name: depths[name][i] for name in STAGES}, t,
            {"backend": getattr(backend, "name", "torch")},
        )
        t["normals"] += _clock(lambda: face.normals)
        t["mesh"] += _clock(lambda: face.surface)
        folder = out_dir / f"face{i}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        writer_times: dict[str, float] = {}
        writing = outputs._Writing(face)  # as save_face does: what several writers share, made once
        for step, key in _WRITER_OF.items():
            t[step] += _clock(lambda k=key: outputs._WRITERS[k](writing, folder, writer_times))
        t["write metadata"] += _clock(lambda: outputs._write_metadata(writing, folder, writer_times))
    t["total"] = sum(t[s] for s in PATH_STEPS)
    return t, len(crops)


# --------------------------------------------------------------------------------------------
# Fresh processes: peak memory and cold start
# --------------------------------------------------------------------------------------------


def child_path(which: str, weights: str, backend_name: str, photo: str, runs: int) -> dict:
    """In a fresh process: imports, model, ``runs`` whole paths; peak RSS and cold-start times."""
    t0 = time.perf_counter()
    import torch  # noqa: F401

    from df2net.backends import TorchBackend, make_backend
    from df2net.face import FaceDetector
    from df2net.model.weights import load_model

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    if which == "original":
        loaded = _original_loaded()
        backend = TorchBackend(loaded, optimize=False)
    else:
        loaded = load_model(weights)
        if backend_name == "torch-eager":
            backend = TorchBackend(loaded, optimize=False)
        else:
            backend = make_backend(loaded, backend_name)
    detector = FaceDetector()
    t_load = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp(prefix="df2net-speed-child-"))
    totals = []
    try:
        for _ in range(runs):
            steps, _ = run_path(backend, loaded.config, detector, Path(photo), out)
            totals.append(steps["total"])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "config": which,
        "backend": getattr(backend, "name", backend_name),
        "peak_rss_mb": _peak_rss_mb(),
        "import_s": t_import,
        "load_s": t_load,
        "first_photo_s": totals[0],
        "later_photo_s": statistics.median(totals[1:]) if len(totals) > 1 else None,
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    ``VmHWM`` of ``/proc/self/status`` where there is one: ``ru_maxrss`` is carried across
    ``execve`` on Linux, so a child started from this (large) benchmark process would report
    the parent's peak; the high-water mark of the process's own address space would not.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_child(which: str, weights: Path, backend: str, photo: Path, runs: int) -> dict:
    command = [sys.executable, __file__, "--child", which, "--weights", str(weights)]
    command += ["--backend", backend, "--photo", str(photo), "--child-runs", str(runs)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _fmt_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="our weights (.safetensors); default: the shipped ones, else random")
    parser.add_argument("--backend", default="auto", help="our backend: auto (default), torch or onnxruntime")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--photo", default=None, help="photo of the whole-path timing (default: demo 1.png)")
    parser.add_argument("--demo-dir", default=str(DEFAULT_DEMO_DIR), help="folder of photos for faces per second")
    parser.add_argument("--batch", type=int, default=4, help="batch size of the batched demo run (default 4)")
    parser.add_argument("--skip-original-stages", action="store_true", help="do not time the original's stages")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-runs", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    demo_dir = Path(args.demo_dir)
    demo_photos = sorted(demo_dir.glob("*.png"), key=lambda p: (len(p.stem), p.stem)) if demo_dir.is_dir() else []
    photo = Path(args.photo) if args.photo else (demo_photos[0] if demo_photos else DEFAULT_PHOTO)

    if args.child:
        print(json.dumps(child_path(args.child, args.weights, args.backend, str(photo), args.child_runs)))
        return 0

    import torch

    from df2net.backends import TorchBackend, make_backend, onnxruntime_available
    from df2net.face import FaceDetector, crop_face
    from df2net.io import load_image
    from df2net.cpu import set_inference_threads
    from df2net.model.weights import load_model
    from df2net.reconstruct import STAGES, predict_stage_depths

    threads = set_inference_threads()
    weights, origin = _our_weights(args.weights)
    loaded = load_model(weights)
    original = _original_loaded()
    ours = make_backend(loaded, args.backend)
    backends = {"torch": make_backend(loaded, "torch")}
    if onnxruntime_available():
        backends["onnxruntime"] = make_backend(loaded, "onnxruntime")
    eager = TorchBackend(loaded, optimize=False)
    original_backend = TorchBackend(original, optimize=False)
    detector = FaceDetector()
    r = args.repeats
    print(f"# df2net speed: torch {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs, repeats {r}")
    print(f"our weights: {weights} ({origin}, config {loaded.config.name!r}); our default backend: {ours.name}")
    print(f"photo: {photo}\n")

    # 1. Network stages ---------------------------------------------------------------------
    torch.manual_seed(1)
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    runners = []
    if not args.skip_original_stages:
        runners.append(_torch_stage_runners("original (eager)", original.model, x, channels_last=False))
    runners.append(_torch_stage_runners("ours, plain eager", loaded.model, x, channels_last=False))
    runners.append(_torch_stage_runners("ours, torch", backends["torch"].model, x, channels_last=True))
    if "onnxruntime" in backends:
        runners.append(_onnx_stage_runners("ours, onnxruntime", loaded, backends["onnxruntime"], x))
    stage_times: dict[str, dict[str, list[float]]] = {}
    for stage in ("D", "F", "Fr", "whole"):
        fns = {run.name: run.fns[stage] for run in runners}
        stage_times[stage] = _interleaved(fns, r, args.warmup)
    print("## 1. Network, batch 1, 512x512 input (seconds)\n")
    print(_fmt_row(["stage", "configuration", "median", "min", "max", "ours / original (median)"]))
    print(_fmt_row(["---"] * 6))
    for stage, by_config in stage_times.items():
        base = statistics.median(by_config["original (eager)"]) if "original (eager)" in by_config else None
        for name, times in by_config.items():
            med, lo, hi = _stats(times)
            ratio = f"{med / base:.3f} ({base / med:.1f}x faster)" if base and name != "original (eager)" else ""
            print(_fmt_row([stage, name, f"{med:.3f}", f"{lo:.3f}", f"{hi:.3f}", ratio]))
    print()

    # 4. Depth difference (done early: it needs the crop) ------------------------------------
    rgb = load_image(photo).rgb
    crops = [crop_face(rgb, det, index=i) for i, det in enumerate(detector.detect(rgb))]
    images, masks = np.stack([c.image for c in crops]), np.stack([c.mask for c in crops])
    reference = predict_stage_depths(eager, loaded.config, images, masks)
    diffs: dict[str, dict[str, tuple[float, float]]] = {}
    spans = [float(np.ptp(reference["finer"][i][m])) or 1.0 for i, m in enumerate(masks)]
    for name, backend in backends.items():
        got = predict_stage_depths(backend, loaded.config, images, masks)
        diffs[name] = {}
        for stage in STAGES:
            worst = [float(np.abs(got[stage][i][m] - reference[stage][i][m]).max()) for i, m in enumerate(masks)]
            diffs[name][stage] = (max(w / s for w, s in zip(worst, spans)), max(worst))

    # 2. Whole path ---------------------------------------------------------------------------
    out = Path(tempfile.mkdtemp(prefix="df2net-speed-"))
    path_runs = {
        "original (eager)": (original_backend, original.config),
        f"ours ({ours.name})": (ours, loaded.config),
    }
    path_times: dict[str, list[dict[str, float]]] = {name: [] for name in path_runs}
    faces_in_photo = 0
    try:
        for name, (backend, cfg) in path_runs.items():  # warm up
            run_path(backend, cfg, detector, photo, out / "warm")
        for _ in range(r):
            for name, (backend, cfg) in path_runs.items():
                steps, faces_in_photo = run_path(backend, cfg, detector, photo, out / name.split()[0])
                path_times[name].append(steps)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    names = list(path_runs)
    print(f"## 2. Photo -> mesh + preview, {faces_in_photo} face(s), every file (seconds, median [min-max])\n")
    print(_fmt_row(["step", *names, "ours / original"]))
    print(_fmt_row(["---"] * (len(names) + 2)))
    for step in (*PATH_STEPS, "total"):
        cells = []
        meds = []
        for name in names:
            vals = [run[step] for run in path_times[name]]
            med, lo, hi = _stats(vals)
            meds.append(med)
            cells.append(f"{med:.3f} [{lo:.3f}-{hi:.3f}]")
        ratio = f"{meds[1] / meds[0]:.2f}" if meds[0] > 0.005 else ""
        print(_fmt_row([f"**{step}**" if step == "total" else step, *cells, ratio]))
    print()

    # 3. Fresh processes ---------------------------------------------------------------------
    children = [("original", "torch-eager"), ("ours", "torch-eager"), ("ours", "torch")]
    if "onnxruntime" in backends:
        children.append(("ours", "onnxruntime"))
    print("## 3. A fresh process per configuration: peak memory and cold start (3 photos each)\n")
    header = ["configuration", "peak RSS (MiB)", "import s", "load model + detector s", "first photo s"]
    print(_fmt_row([*header, "later photo s"]))
    print(_fmt_row(["---"] * 6))
    for which, backend_name in children:
        child = _run_child(which, weights, backend_name, photo, runs=3)
        later = f"{child['later_photo_s']:.2f}" if child["later_photo_s"] is not None else ""
        label = f"{which} ({child['backend']})"
        cells = [f"{child['peak_rss_mb']:.0f}", f"{child['import_s']:.2f}", f"{child['load_s']:.2f}"]
        print(_fmt_row([label, *cells, f"{child['first_photo_s']:.2f}", later]))
    print()

    print("## 4. Optimised depth against the plain eager run of the same weights\n")
    print(
        "max |diff| inside the mask, in crop pixels and over the final depth's range there "
        f"({min(spans):.2f} px)\n"
    )
    print(_fmt_row(["backend", *[f"{s}: px / range" for s in STAGES], "within 1e-3"]))
    print(_fmt_row(["---"] * (len(STAGES) + 2)))
    for name, per_stage in diffs.items():
        worst = max(v[0] for v in per_stage.values())
        cells = [f"{per_stage[s][1]:.1e} / {per_stage[s][0]:.1e}" for s in STAGES]
        print(_fmt_row([name, *cells, "yes" if worst <= 1e-3 else "NO"]))
    print()

    # 5. Demo photos ---------------------------------------------------------------------------
    if demo_photos:
        _demo(demo_photos, ours, loaded.config, detector, args.batch)
    else:
        print(f"(no demo photos at {demo_dir}: faces per second skipped)")
    return 0


def _demo(photos: list[Path], backend, config, detector, batch: int) -> None:
    from df2net.face import crop_face
    from df2net.io import load_image
    from df2net.reconstruct import predict_stage_depths

    start = time.perf_counter()
    crops = []
    for p in photos:
        rgb = load_image(p).rgb
        crops += [crop_face(rgb, det, index=i) for i, det in enumerate(detector.detect(rgb))]
    t_detect = time.perf_counter() - start
    images, masks = np.stack([c.image for c in crops]), np.stack([c.mask for c in crops])
    n = len(crops)
    net: dict[int, float] = {}
    for size in (1, batch):
        start = time.perf_counter()
        for i in range(0, n, size):
            predict_stage_depths(backend, config, images[i : i + size], masks[i : i + size])
        net[size] = time.perf_counter() - start
    out = Path(tempfile.mkdtemp(prefix="df2net-speed-demo-"))
    try:
        start = time.perf_counter()
        for p in photos:
            run_path(backend, config, detector, p, out / p.stem)
        t_all = time.perf_counter() - start
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"## 5. The {len(photos)} demo photos ({n} faces), ours ({backend.name})\n")
    print(_fmt_row(["what", "seconds", "faces / s"]))
    print(_fmt_row(["---"] * 3))
    print(_fmt_row(["load + detect + crop, all photos", f"{t_detect:.2f}", f"{n / t_detect:.1f}"]))
    print(_fmt_row(["network, batch 1", f"{net[1]:.2f}", f"{n / net[1]:.2f}"]))
    print(_fmt_row([f"network, batch {batch}", f"{net[batch]:.2f}", f"{n / net[batch]:.2f}"]))
    print(_fmt_row(["whole path with every file, photo by photo", f"{t_all:.2f}", f"{n / t_all:.2f}"]))
    print()


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=UserWarning)
    raise SystemExit(main())
