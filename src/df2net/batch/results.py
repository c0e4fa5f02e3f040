"""The results table of a run (``OUT/results.parquet``, one row per photo) and its summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

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
            **timings,
        )

    @classmethod
    def failed(cls, photo: Photo, error: str) -> PhotoResult:
        """The row of a photo that could not be reconstructed, with its one-line reason."""
        return cls(path=photo.path, folder=photo.stem, status=FAILED, error=error)


def results_schema():
    """The pyarrow schema of the results table (the fields of :class:`PhotoResult`)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("folder", pa.string()),
            ("status", pa.string()),
            ("faces", pa.int32()),
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

    table = pa.Table.from_pylist([asdict(r) for r in results], schema=results_schema())
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def describe_error(source: str, exc: BaseException) -> str:
    """The one-line reason a photo failed: df2net's own message, or an internal error's first line."""
    if isinstance(exc, Df2netError):
        return str(exc).splitlines()[0] if str(exc) else f"{source}: {type(exc).__name__}"
    return f"{source}: internal error: {type(exc).__name__}: {exc}".splitlines()[0]


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
