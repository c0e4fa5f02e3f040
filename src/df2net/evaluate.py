"""``df2net evaluate``: depth, normal and fine-detail scores of every method on a dataset folder.

Methods compared, one row each: the 3DMM mean face at the fitted pose, the 3DMM landmark fit
(both need the ``train`` extra: eos-py and the Surrey Face Model), and df2net after each stage
(D, D+F, D+F+Fr) when weights are given. Depth is compared after a least-squares scale and
offset alignment inside the mask; normals are computed from the aligned depth.

Fine detail is judged by what a method cannot fake (:mod:`df2net.metrics`):

- **relief r / slope**, on samples with ``depth_base.npy`` and a detail mask: the high-pass of
  the aligned prediction minus the true base surface against the high-pass of the true relief,
  where the base is smooth (:func:`~df2net.metrics.relief_scores`);
- **false relief µm**, on samples with ``marks_mask.png`` and ``image_unmarked.png``: the method
  is run a second time on the image without its albedo-only marks, and the RMS depth the marks
  add is reported (:func:`~df2net.metrics.false_relief_um`).

Each is the plain mean over the samples that have the data (every sample counts once); a row
without any shows "–" (null in JSON, empty in CSV).
"""

from __future__ import annotations

import csv
import json
import re
import textwrap
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from df2net.data.baselines import ICT_LANDMARK_FIT, LANDMARK_FIT, MEAN_FACE
from df2net.data.eval_sample import Method, Sample, load_sample
from df2net.metrics import (
    ReliefConfig,
    align_depth,
    depth_error,
    false_relief_um,
    mean_normal_angle,
    normal_angles,
    relief_scores,
    tilt_error_deg,
)


def iter_samples(dataset: Path, limit: int | None = None) -> list[Path]:
    """Sample folders of a dataset, in manifest order."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    names = manifest["samples"][: limit or None]
    return [dataset / n for n in names if (dataset / n / "depth.npy").exists()]


#: Row label of each df2net stage, by the stage's name (the key of its depth in
#: ``predict_stage_depths``, and its ``--save-depth`` file name).
STAGE_LABELS: dict[str, str] = {
    "dense": "df2net D",
    "fine": "df2net D+F",
    "finer": "df2net D+F+Fr",
    "refined": "df2net refined",
}

#: Row label of every known method -> the file name (without ``.npy``) its raw depth gets
#: under ``--save-depth``: ``OUTPUT/depth/<sample>/<name>.npy``.
DEPTH_FILE_NAMES: dict[str, str] = {
    MEAN_FACE: "mean_face",
    LANDMARK_FIT: "landmark_fit",
    ICT_LANDMARK_FIT: "ict_landmark_fit",
    **{label: stage for stage, label in STAGE_LABELS.items()},
}


#: Sub-folder of ``depth/<sample>/`` that holds the depths of a marked sample's unmarked twin.
UNMARKED_DIR = "unmarked"


def depth_file_name(label: str) -> str:
    """The ``--save-depth`` file name of a row label; unknown labels are slugged (``a_b_c``)."""
    return DEPTH_FILE_NAMES.get(label) or re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "method"


@dataclass
class SampleScores:
    """Errors of one method on one sample (nan where the sample lacks the data)."""

    depth_mae_px: float
    depth_rmse_px: float
    depth_pct_range: float
    depth_mae_mm: float
    normal_deg: float
    normal_detail_deg: float
    tilt_deg: float = float("nan")
    relief_r: float = float("nan")
    relief_slope: float = float("nan")
    false_relief_um: float = float("nan")
    false_shape_um: float = float("nan")


@dataclass
class Row:
    """Mean scores of one method over a dataset; each mean over the samples that have the data.

    ``relief_samples`` and ``marks_samples`` count the samples behind the relief columns and
    the false-relief column.
    """

    method: str
    samples: int = 0
    depth_mae_px: float = float("nan")
    depth_rmse_px: float = float("nan")
    depth_pct_range: float = float("nan")
    depth_mae_mm: float = float("nan")
    normal_deg: float = float("nan")
    normal_detail_deg: float = float("nan")
    tilt_deg: float = float("nan")
    relief_r: float = float("nan")
    relief_slope: float = float("nan")
    false_relief_um: float = float("nan")
    false_shape_um: float = float("nan")
    relief_samples: int = 0
    marks_samples: int = 0


def score_sample(pred: np.ndarray, sample: Sample, pred_unmarked: np.ndarray | None = None) -> SampleScores:
    """Scores of a predicted depth map (raw, crop pixels) against the sample's truth.

    ``pred_unmarked`` is the same method's depth for ``sample.unmarked()``; with it (and marks
    in the sample) the false relief is scored.
    """
    from df2net.geometry import depth_to_normals

    mask = sample.mask & (sample.depth != 0)
    err = depth_error(pred, sample.depth, mask)
    aligned = align_depth(pred, sample.depth, mask)
    pred_n = depth_to_normals(aligned, mask)
    true_n = sample.normals if sample.normals is not None else depth_to_normals(sample.depth, mask)
    eroded = _erode(mask, 3)
    detail = eroded & sample.detail_mask if sample.detail_mask is not None else np.zeros_like(mask)
    scale = sample.px_per_mm
    relief_r = relief_slope = false_um = false_shape = float("nan")
    if sample.depth_base is not None and sample.detail_mask is not None and sample.detail_mask.any():
        relief_r, relief_slope, _ = relief_scores(aligned, sample.depth, sample.depth_base, mask, sample.detail_mask)
    if pred_unmarked is not None and sample.has_marks and scale:
        false_um = false_relief_um(pred, pred_unmarked, mask, sample.marks_mask, scale, sigma_px=ReliefConfig().sigma_px)
        false_shape = false_relief_um(pred, pred_unmarked, mask, sample.marks_mask, scale)
    return SampleScores(
        depth_mae_px=err.mae,
        depth_rmse_px=err.rmse,
        depth_pct_range=err.percent_of_range,
        depth_mae_mm=err.mae / scale if scale else float("nan"),
        normal_deg=mean_normal_angle(pred_n, true_n, eroded),
        normal_detail_deg=mean_normal_angle(pred_n, true_n, detail) if detail.any() else float("nan"),
        tilt_deg=tilt_error_deg(aligned, sample.depth, mask),
        relief_r=relief_r,
        relief_slope=relief_slope,
        false_relief_um=false_um,
        false_shape_um=false_shape,
    )


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, iterations=iterations)


def summarise(name: str, scores: Iterable[SampleScores]) -> Row:
    """Mean of per-sample scores as one table row, each over the samples where it is finite."""
    scores = list(scores)
    row = Row(method=name, samples=len(scores))
    for f in fields(SampleScores):
        values = np.array([getattr(s, f.name) for s in scores], dtype=np.float64)
        values = values[np.isfinite(values)]
        setattr(row, f.name, float(values.mean()) if values.size else float("nan"))
    row.relief_samples = sum(1 for s in scores if np.isfinite(s.relief_r))
    row.marks_samples = sum(1 for s in scores if np.isfinite(s.false_relief_um))
    return row


#: What the table shows for a score a row has no data for.
MISSING = "–"

#: The table's columns: header, Row field, decimals (None: an integer count).
TABLE_COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("n", "samples", None),
    ("depth MAE px", "depth_mae_px", 2),
    ("depth % range", "depth_pct_range", 2),
    ("depth MAE mm", "depth_mae_mm", 2),
    ("normal °", "normal_deg", 2),
    ("detail normal °", "normal_detail_deg", 2),
    ("tilt °", "tilt_deg", 2),
    ("relief r", "relief_r", 2),
    ("relief slope", "relief_slope", 2),
    ("false relief µm", "false_relief_um", 0),
    ("false shape µm", "false_shape_um", 0),
)

TABLE_NOTE = (
    "tilt °: angle between the best planes of the aligned depth and the truth (the face's overall tilt); "
    "relief r / slope: correlation and amplitude slope of the high-passed (σ {sigma:g} px) aligned depth "
    "minus the true base against the true relief, near the relief where the base is smooth; "
    "false relief µm: RMS of the high-passed (same σ) depth added under albedo-only marks; false shape µm: "
    "the same without the high-pass (smooth bends included). All are means over the samples "
    "with that data (relief: {relief}, marks: {marks}); {missing} where there are none."
)


def _cells(row: Row) -> list[str]:
    out = [row.method]
    for _, name, decimals in TABLE_COLUMNS:
        value = getattr(row, name)
        if decimals is None:
            out.append(str(value))
        else:
            out.append(MISSING if not np.isfinite(value) else f"{value:.{decimals}f}")
    return out


def _table_note(rows: list[Row]) -> str:
    def count(name: str) -> str:
        values = sorted({getattr(r, name) for r in rows})
        return "/".join(str(v) for v in values) if values else "0"

    return TABLE_NOTE.format(
        sigma=ReliefConfig().sigma_px, relief=count("relief_samples"), marks=count("marks_samples"), missing=MISSING
    )


def format_table(rows: list[Row]) -> str:
    """A plain-text table, one row per method, and a note on the detail columns."""
    lines = [["method", *(h for h, _, _ in TABLE_COLUMNS)], *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for j, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n\n" + textwrap.fill(_table_note(rows), 100)


def format_markdown(rows: list[Row]) -> str:
    """The same table in Markdown (for a README or the model card), and the note."""
    head = ["method", *(h for h, _, _ in TABLE_COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n\n" + _table_note(rows)


def _json_value(value: object) -> object:
    """nan as None (JSON null), everything else as it is."""
    return None if isinstance(value, float) and not np.isfinite(value) else value


@dataclass
class EvalReport:
    """Result of an evaluation: the table rows and the files written."""

    rows: list[Row]
    files: list[Path]

    def table(self) -> str:
        return format_table(self.rows)


def df2net_method(weights: str | Path | None, device: str = "cpu") -> Method:
    """df2net's depth after each stage, on the sample's own crop and mask."""
    from df2net.model.weights import load_model
    from df2net.reconstruct import predict_stage_depths

    loaded = load_model(weights, device=device)

    def run(sample: Sample) -> dict[str, np.ndarray]:
        depths = predict_stage_depths(loaded.model, loaded.config, sample.image[None], sample.mask[None], device)
        return {STAGE_LABELS.get(stage, f"df2net {stage}"): d[0] for stage, d in depths.items()}

    return run


def run_methods(methods: list[Method], sample: Sample) -> dict[str, np.ndarray]:
    """Every method's depth maps for one sample, ``{row label: (S, S) crop pixels}``."""
    preds: dict[str, np.ndarray] = {}
    for method in methods:
        preds.update(method(sample))
    return preds


def save_depths(folder: Path, preds: dict[str, np.ndarray]) -> list[Path]:
    """Write each raw depth map as ``folder/<depth_file_name(label)>.npy`` (float32, atomic)."""
    from df2net.io import atomic_path

    written = []
    for label, depth in preds.items():
        path = folder / f"{depth_file_name(label)}.npy"
        with atomic_path(path) as tmp:
            np.save(tmp, np.asarray(depth, np.float32))
        written.append(path)
    return written


def evaluate(
    dataset: Path,
    methods: list[Method],
    out_dir: Path | None = None,
    limit: int | None = None,
    figure_samples: int = 4,
    progress: bool = True,
    save_depth: bool = False,
) -> EvalReport:
    """Score every method on every sample; write the tables and figure.png to ``out_dir``.

    Samples with albedo-only marks are run a second time on their unmarked image, for the
    false-relief column. With ``save_depth`` each method's raw depth is written to
    ``out_dir/depth/<sample>/<name>.npy`` (:data:`DEPTH_FILE_NAMES`), and that of the unmarked
    twin to ``out_dir/depth/<sample>/unmarked/<name>.npy``.
    """
    from tqdm import tqdm

    if save_depth and out_dir is None:
        raise ValueError("save_depth needs an out_dir")
    per_method: dict[str, list[SampleScores]] = {}
    figure_rows: list[tuple[Sample, dict[str, np.ndarray]]] = []
    for folder in tqdm(iter_samples(dataset, limit), desc="evaluate", unit="sample", disable=not progress):
        sample = load_sample(folder)
        preds = run_methods(methods, sample)
        unmarked = run_methods(methods, sample.unmarked()) if sample.has_marks else {}
        for name, pred in preds.items():
            per_method.setdefault(name, []).append(score_sample(pred, sample, unmarked.get(name)))
        if save_depth:
            save_depths(Path(out_dir) / "depth" / sample.name, preds)
            if unmarked:
                save_depths(Path(out_dir) / "depth" / sample.name / UNMARKED_DIR, unmarked)
        if len(figure_rows) < figure_samples:
            figure_rows.append((sample, preds))
    rows = [summarise(name, scores) for name, scores in per_method.items()]
    files: list[Path] = []
    if out_dir is not None:
        files = write_report(rows, figure_rows, Path(out_dir))
    return EvalReport(rows, files)


def write_report(rows: list[Row], figure_rows: list, out_dir: Path) -> list[Path]:
    """Write the table as CSV, JSON, text and Markdown, and the comparison figure as PNG."""
    import io as _io

    from df2net.io import write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path, txt_path, md_path, fig_path = (
        out_dir / name for name in ("table.csv", "table.json", "table.txt", "table.md", "figure.png")
    )
    records = [{k: _json_value(v) for k, v in asdict(r).items()} for r in rows]
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(Row)])
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    write_text_atomic(csv_path, buf.getvalue())
    write_text_atomic(json_path, json.dumps(records, indent=2))
    write_text_atomic(txt_path, format_table(rows) + "\n")
    write_text_atomic(md_path, format_markdown(rows) + "\n")
    written = [csv_path, json_path, txt_path, md_path]
    if figure_rows:
        from df2net.export import write_rgb_png

        write_rgb_png(fig_path, make_figure(figure_rows))
        written.append(fig_path)
    return written


def make_figure(figure_rows: list[tuple[Sample, dict[str, np.ndarray]]], tile: int = 192) -> np.ndarray:
    """Per sample: input | truth | each method's aligned depth | its error map (one row each)."""
    from PIL import Image, ImageDraw

    from df2net.export import depth_to_colormap

    method_names = list(figure_rows[0][1].keys())
    best = method_names[-1]
    cols = 2 + len(method_names) + 1
    sheet = Image.new("RGB", (cols * tile, len(figure_rows) * tile + 16), "white")
    draw = ImageDraw.Draw(sheet)
    labels = ["input", "truth", *method_names, f"|error| {best}"]
    for c, label in enumerate(labels):
        draw.text((c * tile + 4, 2), label[:30], fill="black")
    for r, (sample, preds) in enumerate(figure_rows):
        mask = sample.mask & (sample.depth != 0)
        lo, hi = np.percentile(sample.depth[mask], [1, 99]) if mask.any() else (0.0, 1.0)
        tiles = [sample.image * sample.mask[..., None], depth_to_colormap(sample.depth, mask, value_range=(lo, hi))]
        for name in method_names:
            tiles.append(depth_to_colormap(align_depth(preds[name], sample.depth, mask), mask, value_range=(lo, hi)))
        err = np.abs(align_depth(preds[best], sample.depth, mask) - sample.depth)
        tiles.append(depth_to_colormap(err, mask, value_range=(0.0, max(0.1 * (hi - lo), 1e-6))))
        for c, arr in enumerate(tiles):
            im = Image.fromarray(np.asarray(arr, dtype=np.uint8)).resize((tile, tile), Image.BILINEAR)
            sheet.paste(im, (c * tile, 16 + r * tile))
    return np.asarray(sheet)


__all__ = [
    "DEPTH_FILE_NAMES",
    "EvalReport",
    "Row",
    "depth_file_name",
    "df2net_method",
    "evaluate",
    "format_markdown",
    "format_table",
    "normal_angles",
    "score_sample",
]
