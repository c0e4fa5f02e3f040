"""The results table of a run (``OUT/results.parquet``, one row per photo) and its summary."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from df2net.batch.inputs import Photo
from df2net.batch.records import PhotoRecord
from df2net.errors import Df2netError
from df2net.io import atomic_path

#: File name of the results table in the output folder.
RESULTS_NAME = "results.parquet"

#: The timing columns, in seconds per photo (the keys of ``PhotoRecord.timings_s``).
TIMING_COLUMNS: tuple[str, ...] = ("load_s", "detect_crop_s", "network_s", "write_s")

OK = "ok"
FAILED = "failed"


@dataclass
class PhotoResult:
    """One row of the results table.

    Attributes:
        path: the photo, as named in the inputs.
        folder: its output folder, relative to the output folder (``<stem>``).
        status: ``"ok"`` or ``"failed"``.
        faces: faces written (0 when failed).
        error: the one-line reason when failed, else None.
        reused: True when the outputs of an earlier run were complete and kept.
        load_s, detect_crop_s, network_s, write_s: seconds per step (of the run that made the
            outputs; None when failed).
        weights_sha256: the weights that made the outputs (None when failed).
        skipped: the faces found in the photo but not reconstructed (the entries of its
            ``photo.json``'s ``skipped_faces``; of a failed photo, those its error names). The
            table holds their count, the column ``skipped_faces`` (:meth:`columns`).
    """

    path: str
    folder: str
    status: str
    faces: int = 0
    error: str | None = None
    reused: bool = False
    load_s: float | None = None
    detect_crop_s: float | None = None
    network_s: float | None = None
    write_s: float | None = None
    weights_sha256: str | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def done(cls, photo: Photo, record: PhotoRecord, reused: bool = False) -> PhotoResult:
        """The row of a photo whose outputs ``record`` describes."""
        timings = {name: record.timings_s.get(name) for name in TIMING_COLUMNS}
        return cls(
            path=photo.path,
            folder=photo.stem,
            status=OK,
            faces=record.faces,
            reused=reused,
            weights_sha256=record.weights_sha256,
            skipped=list(record.skipped_faces),
            **timings,
        )

    @classmethod
    def failed(cls, photo: Photo, error: str, skipped: list[dict[str, Any]] | None = None) -> PhotoResult:
        """The row of a photo that could not be reconstructed, with its one-line reason and the
        faces its error says were found but skipped (``SkippedFace.to_json`` entries)."""
        return cls(path=photo.path, folder=photo.stem, status=FAILED, error=error, skipped=list(skipped or []))

    def columns(self) -> dict[str, Any]:
        """This row as the table's columns: the fields, ``skipped`` replaced by its count
        ``skipped_faces``."""
        row = asdict(self)
        row["skipped_faces"] = len(row.pop("skipped"))
        return row


def results_schema():
    """The pyarrow schema of the results table (:meth:`PhotoResult.columns`)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("folder", pa.string()),
            ("status", pa.string()),
            ("faces", pa.int32()),
            ("skipped_faces", pa.int32()),
            ("error", pa.string()),
            ("reused", pa.bool_()),
            *[(name, pa.float64()) for name in TIMING_COLUMNS],
            ("weights_sha256", pa.string()),
        ]
    )


def write_results_table(results: list[PhotoResult], path: Path) -> None:
    """Write the rows (in the order given) as a Parquet file, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([r.columns() for r in results], schema=results_schema())
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def describe_error(source: str, exc: BaseException) -> str:
    """The one-line reason a photo failed: df2net's own message, or an internal error's first line."""
    if isinstance(exc, Df2netError):
        return str(exc).splitlines()[0] if str(exc) else f"{source}: {type(exc).__name__}"
    return f"{source}: internal error: {type(exc).__name__}: {exc}".splitlines()[0]


def failure_of(source: str, exc: BaseException, debug: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """A failed photo's one-line error and the faces it skipped (JSON-ready); in ``debug`` mode an
    internal error (not a :class:`~df2net.errors.Df2netError`) is raised again instead."""
    from df2net.detection.skipped import skipped_of

    if debug and not isinstance(exc, Df2netError):
        raise exc
    return describe_error(source, exc), [s.to_json() for s in skipped_of(exc)]


@dataclass
class RunSummary:
    """The outcome of a run: every photo's row and the time it took."""

    results: list[PhotoResult]
    seconds: float
    out_dir: Path
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[PhotoResult]:
        return [r for r in self.results if r.status != OK]

    @property
    def faces_written(self) -> int:
        """Faces reconstructed by this run (not counting reused ones)."""
        return sum(r.faces for r in self.results if r.status == OK and not r.reused)

    @property
    def exit_status(self) -> int:
        """1 when any photo failed, else 0."""
        return 1 if self.failures else 0

    def line(self) -> str:
        """The final line: photos, faces, failures, faces per second."""
        done = sum(1 for r in self.results if r.status == OK and not r.reused)
        reused = sum(1 for r in self.results if r.status == OK and r.reused)
        rate = self.faces_written / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{len(self.results)} photo(s): {done} reconstructed, {reused} already done, "
            f"{len(self.failures)} failed; {self.faces_written} face(s) in {self.seconds:.1f} s "
            f"({rate:.2f} faces/s) -> {self.out_dir}"
        )

    def skipped_line(self, min_face_size: int) -> str | None:
        """The line that counts the faces found but skipped, by reason, each with the option
        that keeps them (``min_face_size``: the run's); None when no face was skipped."""
        skipped = [s for r in self.results for s in r.skipped]
        if not skipped:
            return None
        parts = []
        small = [float(s.get("size_px", 0.0)) for s in skipped if s.get("reason") == "too_small"]
        if small:
            # A margin under the smallest: a search for smaller faces boxes them anew.
            keep = max(1, math.floor(0.9 * min(small)))
            parts.append(
                f"{_faces(len(small))} under {min_face_size} px skipped (the smallest {min(small):.0f} px); "
                f"--min-face-size {keep} keeps faces that small"
            )
        unconfirmed = sum(1 for s in skipped if s.get("reason") == "not_confirmed")
        if unconfirmed:
            parts.append(
                f"{_faces(unconfirmed)} that HOG found but dlib's CNN did not confirm skipped "
                "(--detector hog goes without the CNN)"
            )
        return "; ".join(parts)


def _faces(count: int) -> str:
    return f"{count} face{'s' if count != 1 else ''}"

