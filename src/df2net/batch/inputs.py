"""The photos of a run: image files, folders of them and ``@list.txt`` files of paths.

Each photo gets the output folder name ``OUT/<stem>/`` (:func:`unique_stems`), the same in
every engine and in every rerun with the same inputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from df2net.errors import InputError
from df2net.io import iter_image_files

#: An input that starts with this names a text file of inputs, one a line.
LIST_PREFIX = "@"


@dataclass(frozen=True)
class Photo:
    """One photo to reconstruct.

    Attributes:
        path: the file as named in the inputs (what messages and the results table show).
        absolute: the same made absolute against the folder the run was started in (what
            workers open, and what a photo's record names).
        stem: its output folder's name under the run's output folder.
        order: its position among the run's photos, from 0.
    """

    path: str
    absolute: str
    stem: str
    order: int


def read_path_list(list_file: str | os.PathLike[str]) -> list[str]:
    """The entries of a ``@list.txt`` file: one path a line; blank lines and ``#`` lines skipped.

    Entries are taken as if typed on the command line: relative ones are relative to the current
    folder, not to the list's. Raises :class:`~df2net.errors.InputError` when it cannot be read.
    """
    path = Path(list_file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "list file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a list file") from None
    except UnicodeDecodeError:
        raise InputError(path, "list file is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(path, f"cannot read list file ({exc.strerror or type(exc).__name__})") from None
    entries = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            entries.append(entry)
    return entries


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The photo files of ``inputs``: ``@list.txt`` replaced by its entries, folders by their images.

    Lists may not name other lists. Files are kept as named, so a missing one gets its own
    error later (:func:`df2net.io.iter_image_files`).
    """
    items: list[str] = []
    for item in inputs:
        text = os.fspath(item)
        if text.startswith(LIST_PREFIX) and len(text) > 1:
            items.extend(read_path_list(text[len(LIST_PREFIX) :]))
        else:
            items.append(text)
    return iter_image_files(items)


def unique_stems(files: list[Path]) -> dict[Path, str]:
    """Output folder name per input: its stem, made unique when two inputs share one."""
    seen: dict[str, int] = {}
    stems: dict[Path, str] = {}
    for path in files:
        stem = path.stem
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        stems[path] = stem if count == 0 else f"{stem}-{count + 1}"
    return stems


def plan_photos(inputs: Iterable[str | os.PathLike[str]]) -> list[Photo]:
    """The photos of a run, in input order, each with its output folder name.

    A file named twice (directly, in a folder or in a list) is one photo.
    """
    files = list(dict.fromkeys(expand_inputs(inputs)))
    stems = unique_stems(files)
    return [
        Photo(path=str(path), absolute=str(path.absolute()), stem=stems[path], order=i)
        for i, path in enumerate(files)
    ]
