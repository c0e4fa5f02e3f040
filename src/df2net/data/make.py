"""``make_data``: the entry point behind ``df2net make-data {fits,synthetic}``.

- ``fits``: every photo of ``inputs`` (files or folders) -> its crop and the depth of the 3DMM
  fitted to its landmarks; each photo's albedo texture is cached for synthetic faces.
- ``synthetic``: ``count`` random faces textured with the photos' textures (built first when not
  cached), with procedural detail (``depth_base.npy``, ``detail_mask.png``).

Sample ``i`` draws from its own generator seeded by ``(seed, i)``, so a run split over workers or
resumed after an interruption gives the same samples; complete samples are skipped, and each is
written into a temporary folder renamed into place.
"""

from __future__ import annotations

import contextlib

import multiprocessing as mp
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from df2net.data.dataset import contact_sheet, sample_complete, sample_name, write_manifest, write_sample
from df2net.data.face_model import DEFAULT_FACE_MODEL, FaceModel
from df2net.data.synthetic import SampleFailed, SyntheticConfig, config_dict
from df2net.data.textures import TEXTURE_RESOLUTION, TextureLibrary

__all__ = ["make_data", "MakeDataResult", "KINDS", "sample_rng", "ensure_textures"]

KINDS = ("fits", "synthetic")

#: Samples the contact sheet shows.
CONTACT_SHEET_SAMPLES = 16


@dataclass
class MakeDataResult:
    """What :func:`make_data` did.

    Attributes:
        out: the dataset folder.
        samples: names of the complete samples (as in the manifest).
        written: samples made in this run; ``skipped``: already complete; ``failed``: one line each.
        seconds_per_sample: mean wall time of the samples made in this run (per worker).
    """

    out: Path
    samples: list[str]
    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    seconds_per_sample: float = float("nan")


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a run seeded ``seed`` (independent of run order)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _clean_partials(out: Path) -> None:
    for p in out.glob(".*.part"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _write(msg: str, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr)


# ------------------------------------------------------------------------------------------
# Textures
# ------------------------------------------------------------------------------------------


def _texture_for_photo(path: Path, model: Any, library: TextureLibrary, resolution: int, fit: Any = None, rgb: np.ndarray | None = None) -> str:
    """Make (or find) the cached texture of one photo; returns its key."""
    from df2net.data.fitting import fit_face_model
    from df2net.data.textures import background_source, extract_face_texture
    from df2net.errors import InputError
    from df2net.face import default_detector
    from df2net.io import load_image

    key = library.key_for(path, resolution, model.name)
    if library.has(key):
        return key
    if rgb is None:
        rgb = load_image(path).rgb
    if fit is None:
        faces = default_detector().detect(rgb)
        if not faces:
            raise InputError(path, "no face found")
        det = max(faces, key=lambda f: f.side)
        fit = fit_face_model(model, det.landmarks, rgb.shape[1], rgb.shape[0])
    tex = extract_face_texture(rgb, fit, model, resolution)
    bg = background_source(rgb, fit, model)
    library.add(key, tex, bg, {"source": str(path), "face_model": model.name, "yaw_pitch_roll_deg": list(fit.yaw_pitch_roll), "resolution": resolution})
    return key


def ensure_textures(
    photos: Sequence[str | Path], library: TextureLibrary, model: Any, resolution: int = TEXTURE_RESOLUTION, progress: bool = True
) -> tuple[list[str], list[str]]:
    """Cached albedo textures of ``photos`` (made where missing): ``(keys, failures)``."""
    from tqdm import tqdm

    from df2net.errors import Df2netError

    keys: list[str] = []
    failures: list[str] = []
    for path in tqdm(list(photos), desc="textures", unit="photo", disable=not progress):
        try:
            keys.append(_texture_for_photo(Path(path), model, library, resolution))
        except Df2netError as exc:
            failures.append(str(exc))
            _write(f"skipped texture: {exc}", progress)
    return sorted(set(keys)), failures


# ------------------------------------------------------------------------------------------
# Workers (one process each with its own model, detector and texture cache)
# ------------------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(
    kind: str, model: FaceModel, texture_dir: str, keys: list[str], cfg: SyntheticConfig, out: str, seed: int, resolution: int, threads: int | None
) -> None:
    """One worker's state. ``model`` comes loaded from the parent (pickled into each spawned
    worker: about 0.8 s for the ICT model's 59 MB, against several seconds to load it and
    register it to the UV atlas again in every worker)."""
    from df2net.face import default_detector

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _STATE.update(
        kind=kind,
        model=model,
        library=TextureLibrary(texture_dir),
        keys=keys,
        cfg=cfg,
        out=Path(out),
        seed=seed,
        resolution=resolution,
        detector=default_detector(),
    )


def _make_synthetic(index: int) -> tuple[int, str | None, float]:
    from df2net.data.synthetic import render_synthetic

    t0 = time.perf_counter()
    s = _STATE
    try:
        sample = render_synthetic(sample_rng(s["seed"], index), s["model"], s["library"], s["keys"], s["cfg"], s["detector"])
    except SampleFailed as exc:
        return index, f"{sample_name(index)}: {exc}", time.perf_counter() - t0
    sample.params.update(seed=int(s["seed"]), index=int(index))
    write_sample(s["out"], sample_name(index), sample)
    return index, None, time.perf_counter() - t0


def _make_fit(job: tuple[int, str]) -> tuple[int, str | None, float]:
    from df2net.data.fitting import fit_photo_sample
    from df2net.errors import Df2netError
    from df2net.io import load_image

    index, path = job
    t0 = time.perf_counter()
    s = _STATE
    try:
        rgb = load_image(path).rgb
        sample, fit, _ = fit_photo_sample(rgb, s["model"], s["detector"], source=path)
        sample.params.update(seed=int(s["seed"]), index=int(index))
        write_sample(s["out"], sample_name(index), sample)
        _texture_for_photo(Path(path), s["model"], s["library"], s["resolution"], fit=fit, rgb=rgb)
    except Df2netError as exc:
        return index, str(exc), time.perf_counter() - t0
    return index, None, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------


def make_data(
    kind: str,
    inputs: Sequence[str | Path],
    out: str | Path,
    seed: int = 0,
    count: int | None = None,
    *,
    face_model: str = DEFAULT_FACE_MODEL,
    sfm_dir: str | Path | None = None,
    ict_path: str | Path | None = None,
    texture_cache: str | Path | None = None,
    texture_resolution: int = TEXTURE_RESOLUTION,
    workers: int = 1,
    detail: bool = True,
    config: SyntheticConfig | None = None,
    progress: bool = True,
) -> MakeDataResult:
    """Make (or complete) a dataset folder in the format of ``docs/conventions.md``.

    Args:
        kind: ``"fits"`` (3DMM fits of real photos) or ``"synthetic"`` (random textured faces).
        inputs: photo files or folders. For ``fits`` the photos to fit; for ``synthetic`` the
            photos whose textures (and surroundings, for backgrounds) dress the faces; may be
            empty for ``synthetic`` when ``texture_cache`` already holds textures.
        out: the dataset folder (created; complete samples already there are kept).
        seed: base seed; sample ``i`` uses ``SeedSequence([seed, i])``.
        count: ``synthetic``: number of samples (default 16). ``fits``: at most this many photos
            (default all).
        face_model: the face world, ``"ict"`` or ``"sfm"`` (:mod:`df2net.data.face_model`).
        sfm_dir: the Surrey Face Model folder (default ``../shared/data/sfm`` beside the repo);
            the ICT world needs it too (its UV layout).
        ict_path: the ICT model npz (default in ``../shared/data/ict_face_model``).
        texture_cache: where photo textures are cached (default ``out/textures``).
        texture_resolution: texture side in texels.
        workers: processes (``1`` = in this process).
        detail: add procedural wrinkles and pores (``synthetic``).
        config: synthetic ranges (default :class:`SyntheticConfig`).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`MakeDataResult`.

    Raises:
        ValueError: unknown kind, no inputs where needed, or no usable texture.
        FileNotFoundError: the SFM files are missing.
    """
    from tqdm import tqdm

    from df2net.data.face_model import load_face_model
    from df2net.io import iter_image_files

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clean_partials(out)
    model = load_face_model(face_model, sfm_dir, ict_path)
    library = TextureLibrary(texture_cache if texture_cache is not None else out / "textures")
    cfg = config if config is not None else SyntheticConfig()
    if not detail:
        cfg = SyntheticConfig(**{**cfg.__dict__, "detail": False})
    photos = iter_image_files([Path(p) for p in inputs])
    failures: list[str] = []

    if kind == "fits":
        if not photos:
            raise ValueError("make-data fits needs photos (files or folders)")
        if count is not None:
            photos = photos[: int(count)]
        jobs: list[Any] = [(i, str(p)) for i, p in enumerate(photos)]
        total = len(photos)

        def done(job: Any) -> bool:
            i, p = job
            return sample_complete(out / sample_name(i), kind) and library.has(library.key_for(p, texture_resolution, model.name))

        func: Any = _make_fit
        keys: list[str] = []
    else:
        total = 16 if count is None else int(count)
        if photos:
            keys, tex_fail = ensure_textures(photos, library, model, texture_resolution, progress)
            failures += [f"texture: {f}" for f in tex_fail]
        else:
            keys = library.keys()
        if not keys:
            raise ValueError(f"no face textures: give photos to take them from, or a --texture-cache holding them ({library.folder})")
        jobs = list(range(total))

        def done(job: Any) -> bool:
            return sample_complete(out / sample_name(job), kind)

        func = _make_synthetic

    todo = [j for j in jobs if not done(j)]
    skipped = len(jobs) - len(todo)
    init_args = (kind, model, str(library.folder), keys, cfg, str(out), int(seed), int(texture_resolution))
    times: list[float] = []
    n_ok = 0
    bar = tqdm(total=len(jobs), initial=skipped, desc=f"make-data {kind}", unit="sample", disable=not progress)
    try:
        pool = None
        if workers > 1 and len(todo) > 1:
            pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(*init_args, 1))
            results = pool.imap_unordered(func, todo)
        else:
            _init_worker(*init_args, None)
            results = map(func, todo)
        with pool if pool is not None else contextlib.nullcontext():
            for _, err, dt in results:
                times.append(dt)
                n_ok += err is None
                if err:
                    failures.append(err)
                    _write(f"failed: {err}", progress)
                bar.update(1)
    finally:
        bar.close()

    indices = [j[0] if isinstance(j, tuple) else j for j in jobs]
    names = [sample_name(i) for i in indices if sample_complete(out / sample_name(i), kind)]
    extra = {
        "generator": {
            "face_model": face_model,
            **model.model_files(),  # sfm_dir, ict_model
            "texture_cache": str(library.folder),
            "textures": keys if kind == "synthetic" else None,
            "sources": [str(p) for p in photos] if kind == "fits" else None,
            "config": config_dict(cfg) if kind == "synthetic" else None,
            "failed": failures,
        }
    }
    write_manifest(out, kind, seed, names, extra)
    if names:
        contact_sheet(out, names[:CONTACT_SHEET_SAMPLES])
    return MakeDataResult(
        out=out,
        samples=names,
        written=n_ok,
        skipped=skipped,
        failed=failures,
        seconds_per_sample=float(np.mean(times)) if times else float("nan"),
    )
