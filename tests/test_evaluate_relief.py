"""``df2net evaluate``'s fine-detail columns and ``--save-depth``, on a tiny hand-made dataset.

Two sample folders in the dataset format (docs/conventions.md): ``000000`` like a 3DMM fit (no
base surface, no marks), ``000001`` synthetic with grooves, ``depth_base.npy`` and albedo-only
marks (``marks_mask.png``, ``image_unmarked.png``). Fake methods with known behaviour stand in
for the real ones, so the numbers in the table are known.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from df2net.data.eval_sample import Sample, load_sample
from df2net.evaluate import (
    DEPTH_FILE_NAMES,
    MISSING,
    depth_file_name,
    evaluate,
)

SIZE = 160
PX_PER_MM = 2.0
GREY, MARK = 150, 60  # image value of the skin, and of the painted marks
PRESS_PX = 1.0  # the fake shading reader's depth per unit of image brightness


def _geometry() -> dict[str, np.ndarray]:
    """A disc face: a dome (the base) with horizontal grooves 0.15 px deep every 12 rows."""
    v, u = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    c = SIZE / 2
    r2 = (u - c) ** 2 + (v - c) ** 2
    mask = r2 < 72.0**2
    base = np.where(mask, np.sqrt(np.maximum(300.0**2 - r2, 0.0)) - 240.0, 0.0)
    dist = np.abs(((v - 3) % 12) - 6.0)
    relief = np.where(mask, -0.15 * np.exp(-(dist**2) / (2 * 0.8**2)), 0.0)
    relief[np.abs(relief) < 1e-3] = 0.0
    marks = np.zeros_like(mask)
    marks[50:62, 90:102] = True  # a 12 x 12 px freckle patch, inside the face
    return {"mask": mask, "base": base, "relief": relief, "marks": marks}


def _write_sample(folder: Path, synthetic: bool) -> None:
    g = _geometry()
    folder.mkdir(parents=True)
    depth = (g["base"] + g["relief"] if synthetic else g["base"]).astype(np.float32)
    unmarked = np.full((SIZE, SIZE, 3), GREY, np.uint8)
    image = unmarked.copy()
    if synthetic:
        image[g["marks"]] = MARK
    Image.fromarray(image).save(folder / "image.png")
    Image.fromarray(g["mask"].astype(np.uint8) * 255).save(folder / "mask.png")
    np.save(folder / "depth.npy", depth)
    lm = np.stack([np.linspace(40, 120, 68), np.linspace(60, 110, 68)], 1)
    (folder / "landmarks.json").write_text(json.dumps({"crop": lm.tolist()}))
    (folder / "params.json").write_text(json.dumps({"px_per_mm": PX_PER_MM}))
    if synthetic:
        np.save(folder / "depth_base.npy", g["base"].astype(np.float32))
        Image.fromarray((g["relief"] != 0).astype(np.uint8) * 255).save(folder / "detail_mask.png")
        Image.fromarray(g["marks"].astype(np.uint8) * 255).save(folder / "marks_mask.png")
        Image.fromarray(unmarked).save(folder / "image_unmarked.png")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("relief_set")
    _write_sample(root / "000000", synthetic=False)
    _write_sample(root / "000001", synthetic=True)
    manifest = {"kind": "synthetic", "seed": 0, "count": 2, "crop_size": SIZE, "df2net_version": "test",
                "samples": ["000000", "000001"]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


class ShadingReader:
    """A fake df2net "finer": the true depth at another scale and offset (so with all of the
    relief), plus the image's brightness pressed into the depth, as a naive shape-from-shading
    does. Records the images it was given."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def __call__(self, sample: Sample) -> dict[str, np.ndarray]:
        self.images.append(sample.image)
        brightness = sample.image[..., 0].astype(np.float32) / 255.0
        return {"df2net D+F+Fr": (2.0 * sample.depth + 3.0 + PRESS_PX * brightness).astype(np.float32)}


def smooth_fit(sample: Sample) -> dict[str, np.ndarray]:
    """A fake 3DMM mean face: the surface without relief, whatever the image."""
    base = sample.depth_base if sample.depth_base is not None else sample.depth
    return {"3DMM mean face": (0.5 * base + 1.0).astype(np.float32)}


def test_sample_loads_the_optional_files(dataset: Path) -> None:
    plain, synth = load_sample(dataset / "000000"), load_sample(dataset / "000001")
    assert plain.depth_base is None and plain.marks_mask is None and plain.image_unmarked is None
    assert not plain.has_marks
    assert synth.has_marks and synth.marks_mask.sum() == 144 and synth.depth_base.shape == (SIZE, SIZE)
    unmarked = synth.unmarked()
    assert np.all(unmarked.image == GREY) and unmarked.marks_mask is None and not unmarked.has_marks
    assert np.array_equal(unmarked.depth, synth.depth)


def test_detail_columns_have_their_known_values(dataset: Path, tmp_path: Path) -> None:
    reader = ShadingReader()
    report = evaluate(dataset, [reader, smooth_fit], out_dir=tmp_path, progress=False)
    rows = {r.method: r for r in report.rows}
    fine, smooth = rows["df2net D+F+Fr"], rows["3DMM mean face"]
    # Run once per sample, plus once on the unmarked image of the sample with marks.
    assert len(reader.images) == 3 and np.all(reader.images[2] == GREY) and (reader.images[1] == MARK).any()
    # Relief: only the synthetic sample counts; all of it is there, at the aligned scale.
    assert fine.relief_samples == smooth.relief_samples == 1
    assert fine.relief_r > 0.9 and fine.relief_slope == pytest.approx(1.0, abs=0.05)
    assert abs(smooth.relief_r) < 0.1 and abs(smooth.relief_slope) < 0.05
    # False relief: the marks' brightness step, pressed into raw depth, in µm.
    pressed_um = PRESS_PX * (GREY - MARK) / 255.0 / PX_PER_MM * 1000.0
    assert fine.marks_samples == smooth.marks_samples == 1
    assert fine.false_shape_um == pytest.approx(pressed_um, rel=1e-3)
    # In the relief band (high-passed at sigma 4 px) a 12-px block keeps its edges, not its plateau.
    assert 0.2 * pressed_um < fine.false_relief_um < pressed_um
    assert smooth.false_relief_um == 0.0 and smooth.false_shape_um == 0.0
    # The tables show them; JSON has numbers where there is data.
    table = json.loads((tmp_path / "table.json").read_text())
    assert {r["method"]: r["false_shape_um"] for r in table}["df2net D+F+Fr"] == pytest.approx(pressed_um, rel=1e-3)
    text = (tmp_path / "table.txt").read_text()
    assert "relief r" in text and "false relief µm" in text and f"{pressed_um:.0f}" in text
    md = (tmp_path / "table.md").read_text()
    assert md.startswith("| method |") and f"| {pressed_um:.0f} |" in md


def test_rows_without_the_data_show_a_dash_and_null(dataset: Path, tmp_path: Path) -> None:
    evaluate(dataset, [ShadingReader()], out_dir=tmp_path, limit=1, progress=False)  # the fits-like sample only
    (row,) = json.loads((tmp_path / "table.json").read_text())
    assert row["relief_r"] is None and row["relief_slope"] is None and row["false_relief_um"] is None
    assert row["relief_samples"] == 0 and row["marks_samples"] == 0 and row["depth_mae_px"] is not None
    line = (tmp_path / "table.txt").read_text().splitlines()[2]
    assert line.split()[-3:] == [MISSING] * 3
    csv_row = (tmp_path / "table.csv").read_text().splitlines()[1].split(",")
    assert csv_row[-5:-2] == ["", "", ""]


def test_save_depth_writes_the_raw_predictions_under_their_file_names(dataset: Path, tmp_path: Path) -> None:
    reader = ShadingReader()
    evaluate(dataset, [reader, smooth_fit], out_dir=tmp_path, save_depth=True, progress=False)
    for name in ("000000", "000001"):
        folder = tmp_path / "depth" / name
        sample = load_sample(dataset / name)
        twin = ["unmarked"] if sample.has_marks else []  # only 000001 has marks
        assert sorted(p.name for p in folder.iterdir()) == ["finer.npy", "mean_face.npy", *twin]  # no temp files left
        np.testing.assert_array_equal(np.load(folder / "finer.npy"), reader(sample)["df2net D+F+Fr"])
        np.testing.assert_array_equal(np.load(folder / "mean_face.npy"), smooth_fit(sample)["3DMM mean face"])
    # The unmarked twin's depths, for scoring the false relief again later.
    twin_folder = tmp_path / "depth" / "000001" / "unmarked"
    unmarked = load_sample(dataset / "000001").unmarked()
    assert sorted(p.name for p in twin_folder.iterdir()) == ["finer.npy", "mean_face.npy"]
    np.testing.assert_array_equal(np.load(twin_folder / "finer.npy"), reader(unmarked)["df2net D+F+Fr"])


def test_every_row_label_has_its_own_file_name() -> None:
    assert len(set(DEPTH_FILE_NAMES.values())) == len(DEPTH_FILE_NAMES)
    assert {DEPTH_FILE_NAMES[k] for k in ("df2net D", "df2net D+F", "df2net D+F+Fr")} == {"dense", "fine", "finer"}
    assert depth_file_name("3DMM landmark fit") == "landmark_fit"
    assert depth_file_name("My method (v2)") == "my_method_v2"


def test_cli_save_depth_with_df2net_writes_one_file_per_stage(dataset: Path, random_weights: Path, tmp_path: Path) -> None:
    from df2net.cli import main

    out = tmp_path / "eval"
    code = main(["evaluate", str(dataset), "--no-baselines", "--weights", str(random_weights), "-o", str(out),
                 "--save-depth"])
    assert code == 0
    for name in ("000000", "000001"):
        files = sorted(p.name for p in (out / "depth" / name).iterdir())
        assert files == ["dense.npy", "fine.npy", "finer.npy", *(["unmarked"] if name == "000001" else [])]
        assert np.load(out / "depth" / name / "finer.npy").shape == (SIZE, SIZE)
    rows = {r["method"]: r for r in json.loads((out / "table.json").read_text())}
    assert set(rows) == {"df2net D", "df2net D+F", "df2net D+F+Fr"}
    assert all(r["marks_samples"] == 1 and r["relief_samples"] == 1 for r in rows.values())
