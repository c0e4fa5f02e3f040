"""``df2net evaluate``: depth and normal errors of every method on a dataset folder.

Methods compared, one row each: the 3DMM mean face at the fitted pose, the 3DMM landmark fit
(both need the ``train`` extra: eos-py and the Surrey Face Model), and df2net after each stage
(D, D+F, D+F+Fr) when weights are given. Depth is compared after a least-squares scale and
offset alignment inside the mask; normals are computed from the aligned depth.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from df2net.metrics import align_depth, depth_error, mean_normal_angle, normal_angles

#: A method maps a sample to its predicted depth maps by row name (crop pixels).
Method = Callable[["Sample"], dict[str, np.ndarray]]


@dataclass
class Sample:
    """One dataset sample, as written by ``df2net make-data`` (docs/conventions.md)."""

    name: str
    image: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) bool
    depth: np.ndarray  # (S, S) float32, truth (with detail)
    normals: np.ndarray | None  # (S, S, 3) float32
    detail_mask: np.ndarray | None  # (S, S) bool
    landmarks: np.ndarray  # (68, 2) crop frame
    params: dict = field(default_factory=dict)

    @property
    def px_per_mm(self) -> float | None:
        value = self.params.get("px_per_mm")
        return float(value) if value else None


def load_sample(folder: Path) -> Sample:
    """Read one sample folder."""
    from PIL import Image

    def png(name: str) -> np.ndarray | None:
        path = folder / name
        return np.asarray(Image.open(path)) if path.exists() else None

    normals = np.load(folder / "normals.npy").astype(np.float32) if (folder / "normals.npy").exists() else None
    detail = png("detail_mask.png")
    params_path = folder / "params.json"
    return Sample(
        name=folder.name,
        image=np.asarray(Image.open(folder / "image.png").convert("RGB")),
        mask=png("mask.png") > 127,
        depth=np.load(folder / "depth.npy").astype(np.float32),
        normals=normals,
        detail_mask=None if detail is None else detail > 127,
        landmarks=np.asarray(json.loads((folder / "landmarks.json").read_text())["crop"], np.float32),
        params=json.loads(params_path.read_text()) if params_path.exists() else {},
    )


def iter_samples(dataset: Path, limit: int | None = None) -> list[Path]:
    """Sample folders of a dataset, in manifest order."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    names = manifest["samples"][: limit or None]
    return [dataset / n for n in names if (dataset / n / "depth.npy").exists()]


@dataclass
class Row:
    """Mean errors of one method over a dataset."""

    method: str
    samples: int = 0
    depth_mae_px: float = float("nan")
    depth_rmse_px: float = float("nan")
    depth_pct_range: float = float("nan")
    depth_mae_mm: float = float("nan")
    normal_deg: float = float("nan")
    normal_detail_deg: float = float("nan")


@dataclass
class SampleScores:
    """Errors of one method on one sample."""

    depth_mae_px: float
    depth_rmse_px: float
    depth_pct_range: float
    depth_mae_mm: float
    normal_deg: float
    normal_detail_deg: float


def score_sample(pred: np.ndarray, sample: Sample) -> SampleScores:
    """Errors of a predicted depth map against the sample's truth."""
    from df2net.geometry import depth_to_normals

    mask = sample.mask & (sample.depth != 0)
    err = depth_error(pred, sample.depth, mask)
    aligned = align_depth(pred, sample.depth, mask)
    pred_n = depth_to_normals(aligned, mask)
    true_n = sample.normals if sample.normals is not None else depth_to_normals(sample.depth, mask)
    eroded = _erode(mask, 3)
    detail = eroded & sample.detail_mask if sample.detail_mask is not None else np.zeros_like(mask)
    scale = sample.px_per_mm
    return SampleScores(
        depth_mae_px=err.mae,
        depth_rmse_px=err.rmse,
        depth_pct_range=err.percent_of_range,
        depth_mae_mm=err.mae / scale if scale else float("nan"),
        normal_deg=mean_normal_angle(pred_n, true_n, eroded),
        normal_detail_deg=mean_normal_angle(pred_n, true_n, detail) if detail.any() else float("nan"),
    )


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, iterations=iterations)


def summarise(name: str, scores: Iterable[SampleScores]) -> Row:
    """Mean of per-sample scores (ignoring nan) as one table row."""
    scores = list(scores)
    row = Row(method=name, samples=len(scores))
    for key in asdict(SampleScores(*(0.0,) * 6)):
        values = np.array([getattr(s, key) for s in scores], dtype=np.float64)
        values = values[np.isfinite(values)]
        setattr(row, key, float(values.mean()) if values.size else float("nan"))
    return row


def format_table(rows: list[Row]) -> str:
    """A plain-text table, one row per method."""
    headers = ["method", "n", "depth MAE px", "depth % range", "depth MAE mm", "normal °", "detail normal °"]
    lines = [headers]
    for r in rows:
        lines.append(
            [
                r.method,
                str(r.samples),
                f"{r.depth_mae_px:.2f}",
                f"{r.depth_pct_range:.2f}",
                "-" if np.isnan(r.depth_mae_mm) else f"{r.depth_mae_mm:.2f}",
                f"{r.normal_deg:.2f}",
                "-" if np.isnan(r.normal_detail_deg) else f"{r.normal_detail_deg:.2f}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    out = []
    for j, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


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
    from df2net.reconstruct import STAGES, predict_stage_depths

    loaded = load_model(weights, device=device)
    names = {"dense": "df2net D", "fine": "df2net D+F", "finer": "df2net D+F+Fr"}

    def run(sample: Sample) -> dict[str, np.ndarray]:
        depths = predict_stage_depths(loaded.model, loaded.config, sample.image[None], sample.mask[None], device)
        return {names[s]: depths[s][0] for s in STAGES}

    return run


def evaluate(
    dataset: Path,
    methods: list[Method],
    out_dir: Path | None = None,
    limit: int | None = None,
    figure_samples: int = 4,
    progress: bool = True,
) -> EvalReport:
    """Score every method on every sample; write table.csv, table.json and figure.png to out_dir."""
    from tqdm import tqdm

    per_method: dict[str, list[SampleScores]] = {}
    figure_rows: list[tuple[Sample, dict[str, np.ndarray]]] = []
    for folder in tqdm(iter_samples(dataset, limit), desc="evaluate", unit="sample", disable=not progress):
        sample = load_sample(folder)
        preds: dict[str, np.ndarray] = {}
        for method in methods:
            preds.update(method(sample))
        for name, pred in preds.items():
            per_method.setdefault(name, []).append(score_sample(pred, sample))
        if len(figure_rows) < figure_samples:
            figure_rows.append((sample, preds))
    rows = [summarise(name, scores) for name, scores in per_method.items()]
    files: list[Path] = []
    if out_dir is not None:
        files = write_report(rows, figure_rows, Path(out_dir))
    return EvalReport(rows, files)


def write_report(rows: list[Row], figure_rows: list, out_dir: Path) -> list[Path]:
    """Write the table as CSV and JSON and the comparison figure as PNG."""
    from df2net.io import write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path, fig_path, txt_path = (
        out_dir / "table.csv",
        out_dir / "table.json",
        out_dir / "figure.png",
        out_dir / "table.txt",
    )
    fields = list(asdict(rows[0]).keys()) if rows else list(asdict(Row("x")).keys())
    import io as _io

    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    write_text_atomic(csv_path, buf.getvalue())
    write_text_atomic(json_path, json.dumps([asdict(r) for r in rows], indent=2))
    write_text_atomic(txt_path, format_table(rows) + "\n")
    written = [csv_path, json_path, txt_path]
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
    "EvalReport",
    "Row",
    "Sample",
    "df2net_method",
    "evaluate",
    "format_table",
    "load_sample",
    "normal_angles",
    "score_sample",
]
