"""scripts/paired_compare.py: paired differences between two evaluations of the same renders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script, write_truth_sample


@pytest.fixture(scope="module")
def paired():
    return load_script("paired_compare")


def test_summary_separates_a_shift_from_noise(paired):
    rng = np.random.default_rng(0)
    base = rng.uniform(3.0, 9.0, 200)  # per-render errors that vary far more than the shift
    noise = rng.normal(0.0, 1.0, 200)
    shifted = paired.paired_summary(base, base + 0.5 + 0.2 * noise)
    assert shifted["diff"] == pytest.approx(0.5, abs=0.05)
    assert shifted["low"] > 0 and paired.verdict(shifted) == "worse"
    assert paired.verdict(paired.paired_summary(base, base - 0.5 + 0.2 * noise)) == "better"
    # Where higher is better (relief r) the same shift is better, and wins count the higher ones.
    higher = paired.paired_summary(base, base + 0.5 + 0.2 * noise, sign=-1)
    assert paired.verdict(higher, sign=-1) == "better" and higher["wins"] == int((0.5 + 0.2 * noise > 0).sum())
    # The same mean shift buried in per-render differences ten times larger is noise.
    noisy = paired.paired_summary(base[:20], base[:20] + 0.1 + 2.0 * noise[:20])
    assert noisy["low"] < 0 < noisy["high"] and paired.verdict(noisy) == "within noise"
    assert noisy["base"] == pytest.approx(base[:20].mean())


def test_script_scores_saved_depths(paired, tmp_path, capsys):
    """A candidate whose depth has a bump the truth lacks is worse on every render."""
    size, n = 64, 6
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    r2 = ((xx - 31.5) ** 2 + (yy - 31.5) ** 2) / 28.0**2
    mask = r2 < 1.0
    data, base, cand = tmp_path / "data", tmp_path / "eval_base", tmp_path / "eval_cand"
    names = []
    rng = np.random.default_rng(1)
    for i in range(n):
        name = f"{i:06d}"
        names.append(name)
        truth = 30.0 * np.sqrt(np.clip(1.0 - r2, 0.0, None)) * (1.0 + 0.1 * i)  # spheres of growing depth
        write_truth_sample(data / name, truth, mask)
        bump = 4.0 * np.exp(-((xx - 20.0) ** 2 + (yy - 40.0) ** 2) / 30.0)
        for run, pred in ((base, truth + rng.normal(0.0, 0.05, truth.shape)), (cand, truth + bump)):
            (run / "depth" / name).mkdir(parents=True)
            np.save(run / "depth" / name / "finer.npy", pred.astype(np.float32))
    (data / "manifest.json").write_text(json.dumps({"samples": names}))

    assert paired.main([str(data), str(base), str(cand)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("eval_cand")]
    assert len(lines) == 3  # depth %, normals ° and tilt ° (an off-centre bump tilts the best plane)
    for line in lines:
        fields = line.split()
        assert fields[-1] == "worse"
        assert int(fields[-2]) == 0  # better on no render
        assert int(fields[3]) == n
