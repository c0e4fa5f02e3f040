"""A test-only hook to kill a worker at a named point, once per run (for the fault tests).

When ``DF2NET_TEST_KILL_ONCE`` names a folder, the first process to reach :func:`fault_point`
``name`` creates ``<folder>/<name>`` and dies at once (``os._exit``, as a crash or a lost node
would: no cleanup, no exception); every later arrival finds the file and goes on. Unset, it
does nothing.
"""

from __future__ import annotations

import os

FAULT_ENV = "DF2NET_TEST_KILL_ONCE"

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
