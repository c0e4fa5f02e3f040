"""Where the tests that build synthetic faces find ``../shared/data``, and their skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SFM_DIR = SHARED / "sfm"
DEMO = SHARED / "df2net_demo"


def require_sfm() -> None:
    """Skip the calling test module unless eos, the Surrey Face Model and the demo photos are there."""
    pytest.importorskip("eos")
    if not (SFM_DIR / "sfm_shape_3448.bin").is_file() or not (DEMO / "1.png").is_file():
        pytest.skip("../shared/data (SFM and demo photos) not found", allow_module_level=True)
