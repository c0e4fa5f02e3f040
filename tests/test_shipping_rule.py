"""scripts/shipping_rule.py: the rule that decides whether a candidate's weights ship."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script, write_truth_sample

SIZE, RENDERS = 48, 8


@pytest.fixture(scope="module")
def rule():
    return load_script("shipping_rule")


def _spheres() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    r2 = ((xx - 23.5) ** 2 + (yy - 23.5) ** 2) / 21.0**2
    return r2 < 1.0, np.sqrt(np.clip(1.0 - r2, 0.0, None)), np.exp(-((xx - 15.0) ** 2 + (yy - 30.0) ** 2) / 20.0)


def _make_set(root: Path, key: str, errors: dict[str, float]) -> Path:
    """A set of spheres in ``root/data_<key>`` and, for each named run, ``root/runs/eval_<key>_<name>``
    whose depth is the truth plus an off-centre bump of the given height (0: the truth, with a
    whisper of noise so the pairs differ)."""
    mask, sphere, bump = _spheres()
    data = root / f"data_{key}"
    rng = np.random.default_rng(len(key))
    names = []
    for i in range(RENDERS):
        name = f"{i:06d}"
        names.append(name)
        truth = 20.0 * sphere * (1.0 + 0.1 * i)
        write_truth_sample(data / name, truth, mask)
        for run, height in errors.items():
            folder = root / "runs" / f"eval_{key}_{run}" / "depth" / name
            folder.mkdir(parents=True)
            pred = truth + height * (1.0 + 0.05 * i) * bump + rng.normal(0.0, 0.01, truth.shape)
            np.save(folder / "finer.npy", pred.astype(np.float32))
    (data / "manifest.json").write_text(json.dumps({"samples": names}))
    return data


def test_reasons_follow_the_rule(rule):
    assert rule.set_reasons("guard", {"depth_pct_range": "within noise", "normal_deg": "better"}) == []
    assert rule.set_reasons("guard", {"depth_pct_range": "better", "relief_r": "worse"}) == ["relief r worse"]
    # Tilt does not decide.
    assert rule.set_reasons("guard", {"tilt_deg": "worse"}) == []
    assert rule.set_reasons("target", {"depth_pct_range": "better", "normal_deg": "within noise"}) == []
    assert rule.set_reasons("target", {"depth_pct_range": "within noise", "normal_deg": "within noise"}) == [
        "neither depth nor normals better"
    ]
    assert rule.set_reasons("target", {"depth_pct_range": "better", "normal_deg": "worse"}) == ["normals ° worse"]


def test_script_ships_only_a_candidate_that_keeps_the_guards(rule, tmp_path, capsys, monkeypatch):
    # On the target set the base has a bump the candidates lack; on the guard set "good" matches
    # the base and "bad" adds a bump the base lacks.
    target = _make_set(tmp_path, "t", {"base": 3.0, "good": 0.0, "bad": 0.0})
    guard = _make_set(tmp_path, "g", {"base": 0.0, "good": 0.0, "bad": 3.0})
    monkeypatch.chdir(tmp_path)
    sets = ["--set", f"t:{target}:target", "--set", f"g:{guard}:guard"]

    assert rule.main(["base", "good", *sets]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("SHIP good")
    assert rule.main(["base", "bad", *sets]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("DO NOT SHIP bad") and "g: depth % worse" in last and "t:" not in last
    # Judged against itself nothing is better: the target set blocks it.
    assert rule.main(["base", "base", *sets]) == 1
    assert "t: neither depth nor normals better" in capsys.readouterr().out
    # A candidate never evaluated is a missing folder, not a verdict.
    assert rule.main(["base", "never", *sets]) == 2
    assert "eval_t_never" in capsys.readouterr().err


def test_bad_set_option_is_refused(rule, capsys):
    with pytest.raises(SystemExit):
        rule.main(["a", "b", "--set", "ict:data/ict_eval:maybe"])
    assert "KEY:DATA:target" in capsys.readouterr().err
