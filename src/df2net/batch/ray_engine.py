"""The Ray engine: the local engine's work as a Ray Data pipeline over a cluster.

One dataset row per photo flows through three stages::

    paths ─crop (CPU tasks)─▶ face crops ─network (actors)─▶ faces ─write (CPU tasks)─▶ results

- **crop**: skips a photo whose outputs are complete
  (:func:`~df2net.batch.records.completed_record`), else loads it and cuts out its faces
  (``Reconstructor.crop_faces``);
- **network**: actors that load the weights once each and run the faces of several photos
  together (``Reconstructor.reconstruct_batch``, ``batch_faces`` at a time), on CPUs or GPUs;
- **write**: every face's files, then the photo's record
  (:func:`~df2net.batch.records.save_photo`); the row becomes the photo's results-table row.

A photo that fails at any stage becomes a row with its one-line error and passes through the
rest. A worker that dies is retried by Ray (Ray Data retries tasks and restarts actors without
limit); since a face folder appears whole and a photo's record last, a retried photo leaves
nothing half-written. A photo whose worker died twice in the same stage is not tried again but
fails (:mod:`df2net.batch.tries`); a network batch that killed its worker is retried one photo at
a time, so only the photo to blame fails. The driver collects the rows into
``OUT/results.parquet``; when every photo is done already it answers without starting Ray.

Every worker builds its Reconstructor from the run's
:class:`~df2net.batch.options.ReconstructOptions`. ``ray`` is imported only by :func:`run_ray`;
the stages are plain callables.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from df2net.batch.faults import crash_point, fault_point
from df2net.batch.inputs import Photo
from df2net.batch.options import ReconstructOptions
from df2net.batch.records import PhotoRecord, completed_record, save_photo
from df2net.batch.results import (
    RESULTS_NAME,
    PhotoResult,
    RunSummary,
    failure_of,
    write_results_table,
)
from df2net.batch.tries import TryLog, gave_up_cause
from df2net.errors import Df2netError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from df2net.reconstruct import Reconstructor

#: Row states between the stages.
TODO, OK, FAILED = "todo", "ok", "failed"

#: Ray gives a starting node 30 s to register, which a busy machine can miss: a local cluster
#: is started this many times before the run gives up.
LOCAL_START_ATTEMPTS = 3

#: Environment of a local cluster (a joined one is left as ``ray start`` made it). Set before ray
#: is first imported, the first keeps it on 127.0.0.1 (Ray's own switch, the one it uses on macOS
#: and Windows); the second runs its workers at the command's own priority, where Ray would
#: lower theirs by 15 (as Ray's job manager also does).
_LOCAL_CLUSTER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_worker_niceness": "0"}


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide the Ray engine runs.

    Attributes:
        address: a running cluster to join (``ray start --head`` / ``ray start --address``;
            what ``ray.init(address=...)`` takes, e.g. ``"auto"`` or ``"HOST:6379"``); None
            starts a local cluster on this machine, on 127.0.0.1 only.
        workers: network actors; None means one on CPUs, or every GPU of the cluster divided
            by ``gpus_per_worker``.
        gpus_per_worker: GPUs each network actor holds (0: CPU actors).
        cpus_per_worker: CPUs each network actor holds (and its threads).
        num_cpus: logical CPUs of a local cluster. None: this machine's cores for the CPU
            tasks plus the network actors' CPUs on top, since an actor that waits for its next
            batch most of the time should not keep a core from detection and writing.
        task_memory: bytes of memory a crop or write task reserves (a 40-megapixel photo
            decoded, the detector, one photo's faces).
        worker_memory: bytes of host memory a network actor reserves (model, batch, runtime).
        photos_per_block: photos per input block (one crop task each, at most).
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    num_cpus: int | None = None
    task_memory: int = 1 << 30
    worker_memory: int = 2 << 30
    photos_per_block: int = 32

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ValueError("gpus_per_worker must be >= 0 and cpus_per_worker > 0")

    def local_cpus(self) -> int:
        """The logical CPUs a local cluster starts with (see :attr:`num_cpus`)."""
        if self.num_cpus is not None:
            return self.num_cpus
        if hasattr(os, "sched_getaffinity"):
            cores = len(os.sched_getaffinity(0))
        else:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
        return cores + math.ceil((self.workers or 1) * self.cpus_per_worker)


# --------------------------------------------------------------------------------------------
# The stages (run on the workers)
# --------------------------------------------------------------------------------------------

_DETECTORS: dict[bytes, Reconstructor] = {}


def _photo(row: dict[str, Any]) -> Photo:
    return Photo(path=row["path"], absolute=row["absolute"], stem=row["stem"], order=int(row["order"]))


def _failed(row: dict[str, Any], photo: Photo, exc: BaseException, debug: bool) -> dict[str, Any]:
    error, skipped = failure_of(photo.path, exc, debug)
    return {**row, "status": FAILED, "error": error, "skipped": json.dumps(skipped), "payload": b""}


def _given_up(photo: Photo, stage: str) -> Df2netError:
    """The error of a photo whose worker died :data:`~df2net.batch.tries.MAX_TRIES` times in ``stage``."""
    return Df2netError(f"{photo.path}: {gave_up_cause(stage)}")


def crop_stage(
    row: dict[str, Any],
    *,
    options: ReconstructOptions,
    out_dir: str,
    sha256: str,
    tries: str,
    debug: bool = False,
) -> dict[str, Any]:
    """Crop stage (a CPU task): mark a finished photo done, else load it and cut out its faces.

    The row's ``payload`` becomes the pickled ``(crops, source, timings)`` of ``crop_faces``.
    ``tries`` is the run's :class:`~df2net.batch.tries.TryLog` folder.
    """
    photo = _photo(row)
    record = completed_record(Path(out_dir), photo, options.formats, sha256, options.min_face_size)
    if record is not None:
        return {**row, "status": OK, "reused": True, "record": record.to_json()}
    log = TryLog(tries)
    if not log.start(photo.order, "crop"):
        return _failed(row, photo, _given_up(photo, "crop"), debug)
    try:
        crash_point("crop", [photo.path])
        key = pickle.dumps(options)
        if key not in _DETECTORS:  # one per worker process, reused by its later tasks
            _DETECTORS.clear()
            _DETECTORS[key] = options.for_detection()
        cropped = _DETECTORS[key].crop_faces(photo.absolute, source=photo.path)
    except Exception as exc:  # noqa: BLE001 - a bad photo is a row, not a failed job
        return _failed(row, photo, exc, debug)
    finally:
        log.done(photo.order, "crop")
    return {**row, "status": TODO, "payload": pickle.dumps(cropped, protocol=pickle.HIGHEST_PROTOCOL)}


class NetworkStage:
    """Network stage (an actor): loads the weights once, runs the faces of many photos together.

    A batch on which a worker died before (a photo of it has a try left behind in the
    :class:`~df2net.batch.tries.TryLog`) is run one photo at a time, each with its own try.
    """

    def __init__(self, options: ReconstructOptions, tries: str, debug: bool = False) -> None:
        self.reconstructor = options.build()
        self.tries = TryLog(tries)
        self.debug = debug

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        rows = batch.to_pylist()
        todo = [row for row in rows if row["status"] == TODO]
        cropped = [pickle.loads(row["payload"]) for row in todo]
        if any(self.tries.died(row["order"], "network") for row in todo):
            faces = [self._alone(row, item) for row, item in zip(todo, cropped)]
        else:
            for row in todo:
                self.tries.start(row["order"], "network")
            try:
                crash_point("network", [row["path"] for row in todo])
                faces = self.reconstructor.reconstruct_batch(cropped)
            except Exception:  # noqa: BLE001 - find the photo to blame: one at a time, each alone
                faces = [self._one(item) for item in cropped]
            for row in todo:
                self.tries.done(row["order"], "network")
        for row, photo_faces in zip(todo, faces):
            if isinstance(photo_faces, BaseException):
                row.update(_failed(row, _photo(row), photo_faces, self.debug))
            else:
                row["payload"] = pickle.dumps(photo_faces, protocol=pickle.HIGHEST_PROTOCOL)
        fault_point("network")
        return pa.Table.from_pylist(rows, schema=batch.schema)

    def _one(self, item: Any) -> Any:
        try:
            return self.reconstructor.reconstruct_batch([item])[0]
        except Exception as exc:  # noqa: BLE001 - the caller makes it this photo's error
            return exc

    def _alone(self, row: dict[str, Any], item: Any) -> Any:
        """One photo of a batch that killed a worker, with its own try (or given up)."""
        photo = _photo(row)
        if not self.tries.start(photo.order, "network"):
            return _given_up(photo, "network")
        crash_point("network", [photo.path])
        faces = self._one(item)
        self.tries.done(photo.order, "network")
        return faces


def write_stage(
    row: dict[str, Any], *, formats: frozenset[str], out_dir: str, tries: str, debug: bool = False
) -> dict[str, Any]:
    """Write stage (a CPU task): every face's files, then the photo's record.

    Returns ``{"order", "result"}``: the photo's results-table row, as JSON.
    """
    photo = _photo(row)
    log = TryLog(tries)
    if row["status"] == TODO and not log.start(photo.order, "write"):
        row = _failed(row, photo, _given_up(photo, "write"), debug)
    elif row["status"] == TODO:
        try:
            crash_point("write", [photo.path])
            record = save_photo(pickle.loads(row["payload"]), Path(out_dir), photo, formats)
            row = {**row, "status": OK, "record": record.to_json()}
        except Exception as exc:  # noqa: BLE001 - e.g. a full disk: this photo fails, the run goes on
            row = _failed(row, photo, exc, debug)
        finally:
            log.done(photo.order, "write")
    if row["status"] == OK:
        result = PhotoResult.done(photo, PhotoRecord.from_json(row["record"]), reused=bool(row["reused"]))
    else:
        result = PhotoResult.failed(photo, row["error"], json.loads(row["skipped"]))
    return {"order": photo.order, "result": json.dumps(asdict(result))}


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


def run_ray(
    photos: list[Photo],
    out_dir: Path,
    options: ReconstructOptions,
    cluster: RayConfig = RayConfig(),
    *,
    progress: bool = True,
    debug: bool = False,
) -> RunSummary:
    """Reconstruct ``photos`` into ``out_dir`` on a Ray cluster; write the results table.

    ``out_dir`` and the photos must be on a file system every node sees. Raises
    :class:`~df2net.errors.Df2netError` for bad options or weights (checked here, before any
    worker starts) and when the run cannot go on (e.g. no worker can load the network). The
    photos are first checked here in order up to the first one not done: when all are done, the
    run ends without starting (or joining) a Ray cluster; else the done ones are left out.
    """
    out_dir = Path(out_dir).absolute()
    options = options.absolute()
    sha256 = options.check()
    t0 = time.perf_counter()
    done: dict[int, PhotoResult] = {}
    for photo in photos:
        record = completed_record(out_dir, photo, options.formats, sha256, options.min_face_size)
        if record is None:
            break
        done[photo.order] = PhotoResult.done(photo, record, reused=True)
    seconds = time.perf_counter() - t0
    todo = [p for p in photos if p.order not in done]
    if todo:
        rows, run_seconds = _run_cluster(todo, out_dir, options, cluster, sha256, progress, debug)
        done.update(rows)
        seconds += run_seconds
    elif progress:
        print("df2net: every photo is done already; no Ray cluster started", file=sys.stderr)
    lost = "lost: a Ray task of its block failed (see the Ray logs)"
    results = [done.get(p.order) or PhotoResult.failed(p, f"{p.path}: {lost}") for p in photos]
    write_results_table(results, out_dir / RESULTS_NAME)
    return RunSummary(results=results, seconds=seconds, out_dir=out_dir)


def _run_cluster(
    photos: list[Photo],
    out_dir: Path,
    options: ReconstructOptions,
    cluster: RayConfig,
    sha256: str,
    progress: bool,
    debug: bool,
) -> tuple[dict[int, PhotoResult], float]:
    """Run the pipeline over ``photos`` on a started or joined cluster.

    Returns their rows by order, and the seconds from the cluster's start (not counted) to the end.
    """
    ray = _connect(cluster, _log_level(progress, debug))
    tries = None
    try:
        t0 = time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        tries = tempfile.mkdtemp(prefix=".ray-tries-", dir=out_dir)  # the run's TryLog, seen by every node
        resources = ray.cluster_resources()
        workers = _network_workers(cluster, resources)
        if progress:
            print(
                f"df2net: Ray cluster at {ray.get_runtime_context().gcs_address} "
                f"({'joined' if cluster.address else 'local'}; {len(ray.nodes())} node(s), "
                f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs); "
                f"{workers} network worker(s)",
                file=sys.stderr,
            )
        dataset = _pipeline(ray, photos, out_dir, options, cluster, workers, sha256, tries, progress, debug)
        rows = {int(row["order"]): PhotoResult(**json.loads(row["result"])) for row in dataset.iter_rows()}
        return rows, time.perf_counter() - t0
    except Exception as exc:  # e.g. no worker can load the weights: nothing gets done
        if debug:
            raise
        raise Df2netError(
            f"the Ray run stopped: {_last_line(exc)} (finished photos are kept; a rerun skips them)"
        ) from None
    finally:
        ray.shutdown()
        if tries is not None:
            shutil.rmtree(tries, ignore_errors=True)


def _network_workers(cluster: RayConfig, resources: dict[str, float]) -> int:
    """How many network actors: as asked, else one on CPUs or one per GPU share."""
    if cluster.workers:
        return cluster.workers
    if cluster.gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // cluster.gpus_per_worker))
    return 1


def _last_line(exc: BaseException) -> str:
    """The last line of ``exc``'s message: where Ray puts the error a worker raised."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _log_level(progress: bool, debug: bool) -> int:
    """Ray's log level: everything with ``debug``, warnings by default, errors when quiet."""
    return logging.DEBUG if debug else logging.WARNING if progress else logging.ERROR


def _connect(cluster: RayConfig, log_level: int = logging.WARNING):
    """Start a local cluster (127.0.0.1 only) or join ``cluster.address``; return ``ray``."""
    if cluster.address is None:
        for name, value in _LOCAL_CLUSTER_ENV.items():
            os.environ.setdefault(name, value)
    import ray

    kwargs: dict[str, Any] = {"logging_level": log_level}
    if cluster.address is None:
        kwargs.update(num_cpus=cluster.local_cpus(), include_dashboard=False)
    else:
        kwargs.update(address=cluster.address)
    attempts = 1 if cluster.address else LOCAL_START_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            ray.init(**kwargs)
            break
        except Exception as exc:  # noqa: BLE001 - Ray's start-up failures are plain Exceptions
            ray.shutdown()
            where = f"join the Ray cluster at {cluster.address}" if cluster.address else "start a local Ray cluster"
            if attempt == attempts:
                raise Df2netError(f"could not {where}: {_last_line(exc)}") from None
            print(f"df2net: could not {where} ({_last_line(exc)}); trying again", file=sys.stderr)
    import ray.data  # configures Ray Data's loggers, so the level below is not overridden

    if log_level >= logging.ERROR:  # quiet: Ray Data's own progress lines too
        logging.getLogger("ray.data").setLevel(log_level)
    return ray


def _pipeline(
    ray,
    photos: list[Photo],
    out_dir: Path,
    options: ReconstructOptions,
    cluster: RayConfig,
    workers: int,
    sha256: str,
    tries: str,
    progress: bool,
    debug: bool,
):
    """The Ray Data dataset of the run: photos -> crop -> network -> write."""
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = progress
    context.print_on_execution_start = progress
    context.max_errored_blocks = 0 if debug else -1  # a block lost for good: its photos fail
    cpus = int(ray.cluster_resources().get("CPU", 1))
    blocks = min(len(photos), max(math.ceil(len(photos) / cluster.photos_per_block), 2 * cpus))
    start = {"status": TODO, "error": "", "skipped": "[]", "reused": False, "record": "", "payload": b""}
    rows = [{**asdict(p), **start} for p in photos]
    common = {"out_dir": str(out_dir), "tries": tries, "debug": debug}
    return (
        ray.data.from_items(rows, override_num_blocks=max(blocks, 1))
        # Its own memory request also keeps Ray Data from fusing this stage into the actors.
        .map(
            crop_stage,
            fn_kwargs={**common, "options": options, "sha256": sha256},
            num_cpus=1,
            memory=cluster.task_memory,
        )
        .map_batches(
            NetworkStage,
            fn_constructor_kwargs={"options": options, "tries": tries, "debug": debug},
            batch_size=options.batch_faces,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=workers),
            num_cpus=cluster.cpus_per_worker,
            num_gpus=cluster.gpus_per_worker or None,
            memory=cluster.worker_memory,
        )
        .map(
            write_stage,
            fn_kwargs={**common, "formats": options.formats},
            num_cpus=1,
            memory=cluster.task_memory,
        )
    )
