"""One photo's outputs, written all or nothing, and the record that tells a rerun it is done.

A photo's folder ``OUT/<stem>/`` holds a folder per face (``face0/``, ... written by
:func:`df2net.outputs.write_face`, each renamed into place whole) and, written last,
``photo.json``: the photo's record (its source, how many faces, every file of every face with
its size, the faces found but skipped and why, the formats, the weights' sha256, the timings). A
photo counts as done only when its record parses, names the same photo and weights, covers the
requested formats, skipped no face the run's minimum face size would keep, and every file it
lists is there with its size (:func:`completed_record`): checked, not assumed.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from df2net import __version__, config
from df2net.batch.faults import fault_point
from df2net.batch.inputs import Photo
from df2net.detection.skipped import skipped_of
from df2net.io import write_text_atomic
from df2net.outputs import face_folder

if TYPE_CHECKING:  # pragma: no cover
    from df2net.detection.skipped import SkippedFace
    from df2net.reconstruct import FaceResult

#: File name of a photo's record in its output folder.
RECORD_NAME = "photo.json"

_FACE_FOLDER = re.compile(r"face(\d+)")
_LEFTOVER = re.compile(r"\..*\.part(\..*)?")  # temporary names of io.atomic_path / write_face


@dataclass
class PhotoRecord:
    """What ``OUT/<stem>/photo.json`` says about a finished photo.

    Attributes:
        source: the photo's absolute path.
        faces: how many faces were written (``face0`` ... ``face<faces-1>``).
        formats: the output formats written.
        files: ``{face folder: {file name: size in bytes}}``.
        weights_sha256: the weights that made it.
        skipped_faces: the faces found in the photo but not reconstructed, each
            :meth:`~df2net.detection.SkippedFace.to_json` (``reason``, ``why``, ``size_px``,
            ``box_xyxy``, ``angle_deg``, ``score``).
        timings_s: seconds spent on the photo, by step (``load_s``, ``detect_crop_s``,
            ``network_s``, ``write_s``).
        df2net_version: the version that wrote it.
    """

    source: str
    faces: int
    formats: list[str]
    files: dict[str, dict[str, int]]
    weights_sha256: str
    skipped_faces: list[dict[str, Any]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    df2net_version: str = __version__

    @classmethod
    def from_json(cls, text: str) -> PhotoRecord:
        """Parse a record; raises ``ValueError``/``TypeError``/``KeyError`` if it is not one."""
        data = json.loads(text)
        return cls(
            source=str(data["source"]),
            faces=int(data["faces"]),
            formats=[str(f) for f in data["formats"]],
            files={str(k): {str(n): int(s) for n, s in v.items()} for k, v in data["files"].items()},
            weights_sha256=str(data["weights_sha256"]),
            skipped_faces=[dict(s) for s in data.get("skipped_faces", [])],
            timings_s={str(k): float(v) for k, v in data.get("timings_s", {}).items()},
            df2net_version=str(data.get("df2net_version", "")),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def photo_timings(faces: list[FaceResult]) -> dict[str, float]:
    """A photo's timings by step: the sum of its faces' shares (see ``Reconstructor``)."""
    total: dict[str, float] = {}
    for face in faces:
        for key, value in face.timings.items():
            total[key] = total.get(key, 0.0) + float(value)
    return total


def save_photo(faces: list[FaceResult], out_dir: Path, photo: Photo, formats: frozenset[str]) -> PhotoRecord:
    """Write every face of ``photo`` into ``OUT/<stem>/``, then its record; return the record.

    The old record goes first and the new one is written last, so a photo whose writer dies on
    the way counts as not done. Temporary folders a killed writer left behind and face folders
    beyond the new face count are removed.
    """
    writer = PhotoWriter(out_dir, photo, len(faces), formats)
    for face in faces:
        writer.add(face)
    return writer.finish(skipped_of(faces))


class PhotoWriter:
    """:func:`save_photo` in steps, for a caller that has a photo's faces one at a time.

    Made with the number of faces to come (the old record and leftovers go at once), then
    :meth:`add` writes each face's folder as it comes, and :meth:`finish` writes the record.
    """

    def __init__(self, out_dir: Path, photo: Photo, faces: int, formats: frozenset[str]) -> None:
        self.out_dir, self.photo, self.formats = Path(out_dir), photo, formats
        folder = self.out_dir / photo.stem
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RECORD_NAME).unlink(missing_ok=True)
        _remove_leftovers(folder, keep_faces=faces)
        self.record_path = folder / RECORD_NAME
        self.faces: list[FaceResult] = []
        self.files: dict[str, dict[str, int]] = {}
        self.write_s = 0.0

    def add(self, face: FaceResult) -> None:
        """Write one face's folder."""
        t0 = time.perf_counter()
        target = face_folder(self.out_dir, self.photo.stem, face.index)
        written = face.save(target, set(self.formats))
        self.files[target.name] = {p.name: p.stat().st_size for p in written}
        self.faces.append(face)
        fault_point("write")
        self.write_s += time.perf_counter() - t0

    def finish(self, skipped: list[SkippedFace]) -> PhotoRecord:
        """Write the record of the faces added (``skipped``: the photo's faces found but not
        reconstructed); return it."""
        timings = {**photo_timings(self.faces), "write_s": self.write_s}
        sha = self.faces[0].model_info.get("sha256", "") if self.faces else ""
        record = PhotoRecord(
            source=self.photo.absolute,
            faces=len(self.faces),
            formats=sorted(self.formats),
            files=self.files,
            weights_sha256=sha,
            skipped_faces=[s.to_json() for s in skipped],
            timings_s={k: round(v, 4) for k, v in timings.items()},
        )
        write_text_atomic(self.record_path, record.to_json())
        return record


def completed_record(
    out_dir: Path,
    photo: Photo,
    formats: frozenset[str],
    weights_sha256: str,
    min_face_size: float = config.MIN_FACE_SIZE,
) -> PhotoRecord | None:
    """The record of ``photo`` if its outputs are complete for this run, else None.

    Complete means: ``photo.json`` parses, names this photo (by absolute path) and these
    weights, covers ``formats``, skipped no face as too small that ``min_face_size`` (the run's)
    keeps, and every file it lists exists with the size it lists; when ``metadata`` is among
    ``formats``, every face's ``metadata.json`` parses too.
    """
    folder = Path(out_dir) / photo.stem
    try:
        record = PhotoRecord.from_json((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    expected_faces = {f"face{i}" for i in range(record.faces)}
    if (
        record.source != photo.absolute
        or record.weights_sha256 != weights_sha256
        or not set(formats) <= set(record.formats)
        or record.faces < 1
        or set(record.files) != expected_faces
        or any(s.get("reason") == "too_small" and s.get("size_px", 0.0) >= min_face_size for s in record.skipped_faces)
    ):
        return None
    for face_name, face_files in record.files.items():
        for name, size in face_files.items():
            try:
                if (folder / face_name / name).stat().st_size != size:
                    return None
            except OSError:
                return None
        if "metadata" in formats:
            try:
                json.loads((folder / face_name / "metadata.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
    return record


def _remove_leftovers(folder: Path, keep_faces: int) -> None:
    """Remove temporary files and folders, and face folders numbered ``keep_faces`` or more."""
    for entry in folder.iterdir():
        face = _FACE_FOLDER.fullmatch(entry.name)
        stale_face = face is not None and int(face.group(1)) >= keep_faces
        if _LEFTOVER.fullmatch(entry.name) or stale_face:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
