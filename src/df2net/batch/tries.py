"""Counting the tries of a photo whose worker died, so a photo that crashes every worker is given up.

Ray retries a task whose worker died, and restarts a network actor and retries its batch, without
limit (Ray Data's defaults): right for a lost node, but a photo that kills whatever process handles
it (a decoder's segfault, the memory killer) would be tried forever and the run never end. So each
stage of the Ray engine marks the photo it starts, in a folder of the run on the shared file
system (``<order>.<stage>``, holding how many tries started), and removes the mark when the photo
is done with, well or not. A mark left behind is a try whose worker died; a photo with
:data:`MAX_TRIES` of them in a stage is not started again but becomes a failed row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Tries of a stage on one photo whose worker died before the photo is given up.
MAX_TRIES: int = 2

#: What each stage does to a photo, for the reason it failed.
STAGE_WORK: dict[str, str] = {
    "crop": "loading it and finding its faces",
    "network": "running the network on its faces",
    "write": "writing its files",
}


@dataclass(frozen=True)
class TryLog:
    """The marks of a run's tries, in ``folder`` (made by the driver, seen by every node)."""

    folder: str

    def _mark(self, order: int, stage: str) -> Path:
        return Path(self.folder) / f"{order}.{stage}"

    def died(self, order: int, stage: str) -> int:
        """How many tries of ``stage`` on photo ``order`` started and were never done with."""
        try:
            return int(self._mark(order, stage).read_text(encoding="ascii") or 0)
        except (OSError, ValueError):
            return 0

    def start(self, order: int, stage: str) -> bool:
        """Mark a try of ``stage`` on photo ``order`` as started; False, and no mark, when
        :data:`MAX_TRIES` tries died already."""
        tries = self.died(order, stage)
        if tries >= MAX_TRIES:
            return False
        mark = self._mark(order, stage)
        part = mark.with_name(f".{mark.name}.{os.getpid()}")
        part.write_text(str(tries + 1), encoding="ascii")
        os.replace(part, mark)  # whole or absent, even if this worker dies now
        return True

    def done(self, order: int, stage: str) -> None:
        """Remove the mark: the try ended in this process (the photo done, or failed itself)."""
        self._mark(order, stage).unlink(missing_ok=True)


def gave_up_cause(stage: str) -> str:
    """The one-line reason of a photo given up in ``stage`` (after the photo's name)."""
    return (
        f"its worker died {MAX_TRIES} times while {STAGE_WORK[stage]} (a crash, the memory killer "
        "or a lost node); not tried again"
    )
