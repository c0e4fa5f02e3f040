"""Test-only hooks that kill a worker (for the fault tests).

When ``DF2NET_TEST_KILL_ONCE`` names a folder, the first process to reach :func:`fault_point`
``name`` creates ``<folder>/<name>`` and dies at once (``os._exit``, as a crash or a lost node
would: no cleanup, no exception); every later arrival finds the file and goes on.

When ``DF2NET_TEST_CRASH`` lists ``stage:file name`` pairs (comma-separated), every process that
reaches :func:`crash_point` of that stage with that photo dies, every time: a photo that crashes
its worker. Unset, neither does anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

FAULT_ENV = "DF2NET_TEST_KILL_ONCE"
CRASH_ENV = "DF2NET_TEST_CRASH"

#: Where the hook can fire: after a photo's first face is written and before its record
#: (``write``), and in a network worker after it ran a batch (``network``).
FAULT_POINTS = ("write", "network")


def fault_point(name: str) -> None:
    """Die here if the test hook is armed and no process has died at ``name`` yet."""
    folder = os.environ.get(FAULT_ENV)
    if not folder:
        return
    try:
        fd = os.open(os.path.join(folder, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(70)


def crash_point(stage: str, photos: Iterable[str]) -> None:
    """Die here if ``DF2NET_TEST_CRASH`` names ``stage`` with the file name of one of ``photos``."""
    listed = os.environ.get(CRASH_ENV)
    if not listed:
        return
    pairs = {tuple(item.strip().split(":", 1)) for item in listed.split(",") if ":" in item}
    if any((stage, os.path.basename(path)) in pairs for path in photos):
        os._exit(70)
