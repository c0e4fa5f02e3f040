"""The local engine: every photo in turn, in this process (never imports ray)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from df2net.batch.inputs import Photo
from df2net.batch.options import ReconstructOptions
from df2net.batch.records import completed_record, save_photo
from df2net.batch.results import RESULTS_NAME, PhotoResult, RunSummary, describe_error, write_results_table
from df2net.detection.skipped import skipped_of
from df2net.errors import Df2netError


def run_local(
    photos: list[Photo],
    out_dir: Path,
    options: ReconstructOptions,
    *,
    progress: bool = True,
    debug: bool = False,
) -> RunSummary:
    """Reconstruct ``photos`` into ``out_dir``, skipping those already done; write the table.

    A photo that fails is a row with its one-line reason; the run goes on. ``debug`` lets an
    internal (unexpected) error raise instead. Raises :class:`~df2net.errors.Df2netError` when
    the reconstructor cannot be built (e.g. bad weights), before any photo.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    t0 = time.perf_counter()  # from the start, loading included, as the Ray engine counts
    reconstructor = options.build()
    sha = reconstructor.model_info["sha256"]
    results: list[PhotoResult] = []
    bar = tqdm(photos, desc="reconstruct", unit="photo", disable=not progress)
    for photo in bar:
        bar.set_postfix_str(Path(photo.path).name)
        record = completed_record(out_dir, photo, options.formats, sha, options.min_face_size)
        if record is not None:
            results.append(PhotoResult.done(photo, record, reused=True))
            continue
        try:
            faces = reconstructor(photo.path)
            record = save_photo(faces, out_dir, photo, options.formats)
        except Exception as exc:  # one photo's failure, expected or not, must not stop the batch
            if debug and not isinstance(exc, Df2netError):
                raise
            skipped = [s.to_json() for s in skipped_of(exc)]
            results.append(PhotoResult.failed(photo, describe_error(photo.path, exc), skipped))
            tqdm.write(f"error: {results[-1].error}", file=sys.stderr)
            continue
        results.append(PhotoResult.done(photo, record))
        if progress:
            tqdm.write(f"{photo.path}: {record.faces} face(s) -> {out_dir / photo.stem}")
    bar.close()
    seconds = time.perf_counter() - t0
    write_results_table(results, out_dir / RESULTS_NAME)
    return RunSummary(results=results, seconds=seconds, out_dir=out_dir)
