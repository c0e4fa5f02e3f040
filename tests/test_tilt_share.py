"""scripts/tilt_share.py: the share of the depth error that is the face's overall tilt."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import load_script
from PIL import Image


@pytest.fixture(scope="module")
def tilt_share():
    return load_script("tilt_share")


def _dome(size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    r2 = ((xx - 31.5) ** 2 + (yy - 31.5) ** 2) / 28.0**2
    mask = r2 < 1.0
    return 30.0 * np.sqrt(np.clip(1.0 - r2, 0.0, None)), mask, xx


def test_a_turned_copy_is_all_tilt_and_the_right_depth_is_none(tilt_share):
    truth, mask, xx = _dome()
    turned = truth + np.tan(np.radians(10.0)) * (xx - 31.5)
    scores = tilt_share.render_scores(turned, truth, mask)
    assert scores["evaluated"] > 3.0 and scores["tilt_forgiven"] < 1e-6
    # Scored after evaluate's scale and offset, which shrink a turned copy a little toward the truth.
    assert 7.0 < scores["tilt_deg"] < 10.0
    assert scores["slope_true"] == pytest.approx(0.0, abs=1e-9) and scores["slope_pred"] > 0.1
    right = tilt_share.render_scores(truth * 0.5 + 3.0, truth, mask)
    assert right["evaluated"] < 1e-4 and right["tilt_deg"] < 1e-3
    # A dome is nearly a quadratic: its best quadratic is off by a few per cent of its range.
    assert 0.5 < right["truth_quadratic"] < 5.0


def test_script_reports_the_share_by_yaw(tilt_share, tmp_path, capsys):
    truth, mask, xx = _dome()
    data, run = tmp_path / "data", tmp_path / "eval"
    names = []
    for i, yaw in enumerate((5.0, 20.0, -35.0)):
        name = f"{i:06d}"
        names.append(name)
        folder = data / name
        folder.mkdir(parents=True)
        np.save(folder / "depth.npy", truth.astype(np.float32))
        Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "mask.png")
        Image.fromarray(np.full(truth.shape + (3,), 128, np.uint8)).save(folder / "image.png")
        (folder / "landmarks.json").write_text(json.dumps({"crop": [[0.0, 0.0]] * 68}))
        (folder / "params.json").write_text(json.dumps({"pose_deg": {"yaw": yaw, "pitch": 0.0, "roll": 0.0}}))
        (run / "depth" / name).mkdir(parents=True)
        pred = truth + 0.2 * (xx - 31.5) + 0.3 * np.sin(xx / 3.0)
        np.save(run / "depth" / name / "finer.npy", pred.astype(np.float32))
    (data / "manifest.json").write_text(json.dumps({"samples": names}))
    assert tilt_share.main([str(data), str(run)]) == 0
    out = capsys.readouterr().out
    assert "3 renders" in out and "of the error is the tilt" in out
    lines = [line.split() for line in out.splitlines() if line.strip()[:2] in ("0-", "15", "30")]
    assert [int(line[1]) for line in lines] == [1, 1, 1]  # one render in each of the first three bins
    # The truth does not turn (a dome), so no render can have its turn the wrong way round.
    assert all(line[-3:] == ["0", "of", "0"] for line in lines)
