"""The local engine: every photo in this process (never imports ray), in three overlapping steps.

While the network runs on some faces, the next photos are loaded and their faces found, and the
faces it has finished are written. Each step is a thread that hands its work on through a queue
that holds a few items at most (:data:`QUEUE_PHOTOS`, :data:`QUEUE_FACES`), so memory stays flat
however many photos there are:

- reading: the check for a photo's finished outputs, loading, detection and cropping
  (:meth:`~df2net.reconstruct.Reconstructor.crop_faces`);
- the network (the calling thread): the faces waiting, ``batch_faces`` at a time, across
  photos (:meth:`~df2net.reconstruct.Reconstructor.reconstruct_faces`);
- writing: each face's files as soon as the network is done with it, and after a photo's last
  face its record (:class:`~df2net.batch.records.PhotoWriter`).

The steps overlap where they run outside Python's GIL: ONNX Runtime, dlib's HOG scan, the PNG deflate,
most of numpy. Photos finish in their order; the results table, resuming and the messages are
those of one photo after another.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from df2net.batch.inputs import Photo
from df2net.batch.options import ReconstructOptions
from df2net.batch.records import PhotoWriter, completed_record
from df2net.batch.results import RESULTS_NAME, PhotoResult, RunSummary, failure_of, write_results_table
from df2net.detection.skipped import skipped_of

if TYPE_CHECKING:  # pragma: no cover
    from df2net.reconstruct import FaceResult, Reconstructor

#: Photos read ahead of the network (their crops wait in memory).
QUEUE_PHOTOS = 2
#: Faces finished by the network and waiting to be written.
QUEUE_FACES = 8


@dataclass
class _Item:
    """One photo on its way through the steps."""

    position: int  # in the inputs
    photo: Photo
    crops: list = field(default_factory=list)  # its FaceCrops (a FaceList, with ``skipped``)
    source: str = ""
    share: dict[str, float] = field(default_factory=dict)  # each face's share of its timings so far
    result: PhotoResult | None = None  # set when it is finished before the writer: reused, failed


class _Stopped(Exception):
    """Another step failed in debug mode: this one stops."""


class _Pipeline:
    """The queues and the threads of one run; :meth:`run` is the network step."""

    def __init__(self, photos: list[Photo], out_dir: Path, options: ReconstructOptions,
                 reconstructor: Reconstructor, progress: bool, debug: bool) -> None:
        from tqdm import tqdm

        self.photos, self.out_dir, self.options = photos, out_dir, options
        self.reconstructor, self.debug = reconstructor, debug
        self.sha = reconstructor.model_info["sha256"]
        self.to_network: queue.Queue = queue.Queue(QUEUE_PHOTOS)
        self.to_writer: queue.Queue = queue.Queue(QUEUE_FACES)
        self.results: list[PhotoResult | None] = [None] * len(photos)
        self.stop = threading.Event()
        self.crash: BaseException | None = None
        self.progress = progress
        self.bar = tqdm(total=len(photos), desc="reconstruct", unit="photo", disable=not progress)

    # ------------------------------------------------------------------------------ the steps

    def run(self) -> list[PhotoResult]:
        threads = [threading.Thread(target=self._guarded, args=(step,), name=f"df2net-{step.__name__[1:]}",
                                    daemon=True) for step in (self._read, self._write)]
        for thread in threads:
            thread.start()
        try:
            self._guarded(self._network)
        finally:
            self._put(self.to_writer, None)  # the writer's end (or its wake-up when stopping)
            for thread in threads:
                while thread.is_alive():  # join() with a timeout keeps Ctrl-C working
                    thread.join(0.5)
            self.bar.close()
        if self.crash is not None:
            raise self.crash
        return [r for r in self.results if r is not None]

    def _read(self) -> None:
        """Reading: each photo's crops, or its result when it is done already or cannot be read."""
        from df2net.reconstruct import per_face

        for position, photo in enumerate(self.photos):
            self._check()
            item = _Item(position, photo)
            record = completed_record(self.out_dir, photo, self.options.formats, self.sha,
                                      self.options.min_face_size)
            if record is not None:
                item.result = PhotoResult.done(photo, record, reused=True)
            else:
                try:
                    item.crops, item.source, timings = self.reconstructor.crop_faces(photo.path)
                    item.share = per_face(timings, len(item.crops))
                except Exception as exc:  # one photo's failure must not stop the batch
                    item.result = self._failed(photo, exc)
            self._put(self.to_network, item)
        self._put(self.to_network, None)

    def _network(self) -> None:
        """The network: the waiting faces, ``batch_faces`` at a time; each face goes on to the
        writer as soon as it is done, a photo finished early as soon as the faces before it."""
        batch = max(1, self.options.batch_faces)
        waiting: deque[tuple[_Item, int]] = deque()  # (photo, face index); index -1: pass it on
        ended = False
        while waiting or not ended:
            # Take what reading has ready; wait for it only when there is nothing else to do.
            while not ended and sum(i >= 0 for _, i in waiting) < batch:
                try:
                    item = self.to_network.get(timeout=0.5) if not waiting else self.to_network.get_nowait()
                except queue.Empty:
                    if waiting:
                        break
                    self._check()
                    continue
                if item is None:
                    ended = True
                elif item.result is not None or not item.crops:
                    waiting.append((item, -1))
                else:
                    waiting.extend((item, i) for i in range(len(item.crops)))
            while waiting and waiting[0][1] < 0:
                item = waiting.popleft()[0]
                self._put(self.to_writer, ("result" if item.result is not None else "done", item))
            chunk: list[tuple[_Item, int]] = []
            while waiting and waiting[0][1] >= 0 and len(chunk) < batch:
                chunk.append(waiting.popleft())
            if chunk:
                self._run_network(chunk, waiting)

    def _run_network(self, chunk: list[tuple[_Item, int]], waiting: deque[tuple[_Item, int]]) -> None:
        """The faces of ``chunk`` through the network and on to the writer. When that fails for
        faces of several photos, each photo is tried alone, so only the culprit fails (and its
        faces still waiting are dropped)."""
        try:
            made = self.reconstructor.reconstruct_faces(
                [(item.crops[i], i, item.source, item.share) for item, i in chunk]
            )
        except Exception as exc:
            items = list({id(item): item for item, _ in chunk}.values())
            if len(items) > 1:
                for item in items:
                    self._run_network([f for f in chunk if f[0] is item], waiting)
                return
            item = items[0]
            item.result = self._failed(item.photo, exc)
            rest = [f for f in waiting if f[0] is not item]
            waiting.clear()
            waiting.extend(rest)
            self._put(self.to_writer, ("result", item))
            return
        for (item, i), face in zip(chunk, made):
            self._put(self.to_writer, ("face", item, face))
            if i == len(item.crops) - 1:
                self._put(self.to_writer, ("done", item))

    def _write(self) -> None:
        """Writing: faces into their folders, then each photo's record and results-table row."""
        writer: PhotoWriter | None = None
        failed: set[int] = set()  # photos whose writing failed: their later faces are dropped
        while (message := self._get(self.to_writer)) is not None:
            kind, item, *rest = message
            if kind == "result":
                writer = None if writer is not None and writer.photo is item.photo else writer
                self._finish(item, item.result)
                continue
            if item.position in failed:
                continue
            try:
                if writer is None or writer.photo is not item.photo:
                    writer = PhotoWriter(self.out_dir, item.photo, len(item.crops), self.options.formats)
                if kind == "face":
                    face: FaceResult = rest[0]
                    writer.add(face)
                else:  # "done": the photo's last face is written
                    record = writer.finish(skipped_of(item.crops))
                    writer = None
                    self._finish(item, PhotoResult.done(item.photo, record))
            except Exception as exc:
                failed.add(item.position)
                writer = None
                self._finish(item, self._failed(item.photo, exc))

    # ------------------------------------------------------------------------------ helpers

    def _finish(self, item: _Item, result: PhotoResult) -> None:
        from tqdm import tqdm

        self.results[item.position] = result
        if result.status != "ok":
            tqdm.write(f"error: {result.error}", file=sys.stderr)
        elif self.progress and not result.reused:
            tqdm.write(f"{item.photo.path}: {result.faces} face(s) -> {self.out_dir / item.photo.stem}")
        self.bar.set_postfix_str(Path(item.photo.path).name)
        self.bar.update(1)

    def _failed(self, photo: Photo, exc: Exception) -> PhotoResult:
        """The row of a photo that failed with ``exc``; in debug mode an internal error stops
        the run instead."""
        return PhotoResult.failed(photo, *failure_of(photo.path, exc, self.debug))

    def _guarded(self, step) -> None:
        """Run a step; an exception stops every step and is raised again by :meth:`run`."""
        try:
            step()
        except _Stopped:
            pass
        except BaseException as exc:
            if self.crash is None:
                self.crash = exc
            self.stop.set()

    def _check(self) -> None:
        if self.stop.is_set():
            raise _Stopped

    def _put(self, q: queue.Queue, item: Any) -> None:
        while True:
            try:
                q.put(item, timeout=0.5)
                return
            except queue.Full:
                if self.stop.is_set() and item is not None:
                    raise _Stopped from None
                if self.stop.is_set():
                    return

    def _get(self, q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=0.5)
            except queue.Empty:
                self._check()


def network_threads() -> int | None:
    """The network's threads beside the other two steps: one core fewer than the machine has
    (the steps themselves keep the cores busy, and a thread pool that waits for a thread the
    other steps hold up costs time), unless ``OMP_NUM_THREADS`` says (None: its choice)."""
    from df2net.cpu import physical_cores

    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, physical_cores() - 1)


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
    out_dir = Path(out_dir)
    t0 = time.perf_counter()  # from the start, loading included, as the Ray engine counts
    reconstructor = options.build(threads=network_threads())
    results = _Pipeline(photos, out_dir, options, reconstructor, progress, debug).run()
    seconds = time.perf_counter() - t0
    write_results_table(results, out_dir / RESULTS_NAME)
    return RunSummary(results=results, seconds=seconds, out_dir=out_dir)
