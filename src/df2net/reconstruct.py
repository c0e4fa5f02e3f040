"""The straight path from a photo to reconstructed faces: load, detect, crop, run the network.

``Reconstructor`` is the public entry point::

    from df2net import Reconstructor
    faces = Reconstructor()("photo.jpg")
    faces[0].save("out/")
    mesh = faces[0].to_mesh()
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from df2net import config as _config
from df2net.config import CropConfig, MaskConfig
from df2net.cropbox import as_crop_box
from df2net.detection.skipped import FaceList, skipped_of
from df2net.errors import InputError
from df2net.outputs import write_face

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import trimesh

    from df2net.backends import Backend
    from df2net.face import FaceCrop
    from df2net.geometry import Mesh
    from df2net.model.df2net import DF2Net

Stage = Literal["dense", "fine", "finer"]
STAGES: tuple[Stage, ...] = ("dense", "fine", "finer")


@dataclass
class FaceResult:
    """One reconstructed face. Arrays are in the crop frame (see docs/conventions.md).

    ``depth`` is the final (finer) depth in crop pixels, larger = nearer, 0 outside ``mask``;
    ``stages`` holds the depth after each stage (``dense``, ``fine``, ``finer``).
    """

    source: str
    index: int
    crop: np.ndarray  # (S, S, 3) uint8, unmasked
    mask: np.ndarray  # (S, S) bool
    landmarks: np.ndarray  # (68, 2) float32, crop frame
    landmarks_image: np.ndarray  # (68, 2) float32, image frame
    box: np.ndarray  # (4,) x0, y0, x1, y1 of the detection, upright in the frame turned by crop_box[3]
    crop_box: tuple[float, float, float, float]  # x0, y0, side, angle (deg) of the crop (df2net.cropbox)
    stages: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)
    model_info: dict[str, str] = field(default_factory=dict)
    detection: dict[str, object] = field(default_factory=dict)  # detector, score, scores, angle_deg

    @classmethod
    def from_crop(
        cls,
        crop: FaceCrop,
        index: int,
        source: str,
        depths: dict[str, np.ndarray],
        timings: dict[str, float],
        model_info: dict[str, str],
    ) -> FaceResult:
        """Wrap a crop and its per-stage depth ``{stage: (S, S)}`` (crop pixels) as a result."""
        return cls(
            source=source,
            index=index,
            crop=crop.image,
            mask=crop.mask,
            landmarks=crop.landmarks.astype(np.float32),
            landmarks_image=crop.detection.landmarks.astype(np.float32),
            box=np.asarray(crop.detection.box, dtype=np.float32),
            crop_box=tuple(float(v) for v in as_crop_box(crop.crop_box)),
            stages={name: _normalise_depth(depths[name], crop.mask) for name in STAGES},
            timings=dict(timings),
            model_info=dict(model_info),
            detection={
                "detector": crop.detection.detector,
                "score": round(float(crop.detection.score), 4),
                "scores": dict(crop.detection.scores),
                "angle_deg": round(float(crop.detection.angle), 3),
            },
        )

    @property
    def depth(self) -> np.ndarray:
        """Final depth map ``(S, S)`` float32 in crop pixels."""
        return self.stages["finer"]

    @cached_property
    def normals(self) -> np.ndarray:
        """Unit normals ``(S, S, 3)`` computed from :attr:`depth` inside the mask."""
        from df2net.geometry import depth_to_normals

        return depth_to_normals(self.depth, self.mask)

    @property
    def masked_crop(self) -> np.ndarray:
        """The crop with everything outside the face mask set to black."""
        return self.crop * self.mask[..., None].astype(np.uint8)

    @cached_property
    def surface(self) -> Mesh:
        """The final face mesh, built once and shared by every exporter."""
        return self.mesh()

    def mesh(self, stage: Stage = "finer", step: int = 1) -> Mesh:
        """The face surface as a df2net :class:`~df2net.geometry.Mesh` (crop-pixel units)."""
        from df2net.geometry import depth_to_mesh

        return depth_to_mesh(self.stages[stage], self.mask, self.crop, step=step)

    def to_mesh(self, stage: Stage = "finer", step: int = 1) -> trimesh.Trimesh:
        """The face surface as a textured ``trimesh.Trimesh`` (texture = the crop)."""
        return self.mesh(stage, step).to_trimesh(self.crop)

    def save(self, folder: str | Path, formats: set[str] | None = None) -> list[Path]:
        """Write this face's files into ``folder`` (created); return the paths written."""
        return write_face(self, Path(folder), formats)


def network_input_array(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Masked crops ``(B, S, S, 3)`` uint8 as ``(B, 3, S, S)`` float32 in [-1, 1] (``x / 127.5 - 1``)."""
    masked = images.astype(np.float32) * masks[..., None]
    return np.ascontiguousarray(masked.transpose(0, 3, 1, 2)) / np.float32(127.5) - np.float32(1.0)


def to_network_input(images: np.ndarray, masks: np.ndarray, size: int) -> torch.Tensor:
    """Masked crops ``(B, S, S, 3)`` uint8 as a ``(B, 3, size, size)`` float tensor in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(network_input_array(images, masks))
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.contiguous()


def predict_stage_depths(
    model: torch.nn.Module | Backend,
    config,
    images: np.ndarray,
    masks: np.ndarray,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Depth after each stage for crops ``(B, S, S, 3)`` uint8 with masks ``(B, S, S)``.

    ``model`` is a :class:`~df2net.model.df2net.DF2Net` or a :mod:`df2net.backends` backend
    (anything with ``forward_stages`` and ``to_pixels``).
    Returns ``{stage: (B, S, S) float32}`` in crop pixels (not yet offset to the mask).
    """
    size = images.shape[1]
    if size == config.input_size and hasattr(model, "stage_pixels"):
        # A backend outside PyTorch (ONNX Runtime) on crops of the network's size: numpy from
        # end to end, without importing PyTorch. PyTorch's elementwise steps around it (the
        # input's scaling, the depth's units) waited on their thread pool on a busy machine,
        # 15-25 ms each; the values are the same to the bit.
        return model.stage_pixels(network_input_array(images, masks))
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        x = to_network_input(images, masks, config.input_size).to(device)
        stages = model.forward_stages(x)
        out = {}
        for name in STAGES:
            d = getattr(stages, name)
            if d.shape[-1] != size:
                d = F.interpolate(d, size=(size, size), mode="bilinear", align_corners=False)
            # Network units -> pixels of the network input -> pixels of the crop.
            px = model.to_pixels(d) * (size / config.input_size)
            out[name] = px[:, 0].float().cpu().numpy()
    return out


def per_face(timings: dict[str, float], faces: int) -> dict[str, float]:
    """Each face's share of a photo's timings (the whole of them for a photo without faces)."""
    return {k: v / max(faces, 1) for k, v in timings.items()}


class Reconstructor:
    """Photo in, reconstructed faces out. Loads the detector and the network once.

    Args:
        weights: a ``.safetensors`` file of df2net weights; ``None`` takes the weights shipped
            inside the package (raises :class:`~df2net.errors.WeightsError` if there are none).
        device: ``"cpu"`` or ``"cuda"``.
        max_batch: faces of one photo run through the network together, this many at a time.
        backend: what runs the network (:mod:`df2net.backends`): ``"auto"`` (ONNX Runtime on the
            CPU when installed, else PyTorch), ``"torch"`` or ``"onnxruntime"``.
        detector: how faces are found (:data:`df2net.detect.DETECTORS`): ``"auto"`` (HOG
            candidates confirmed by dlib's CNN), ``"hog"`` or ``"cnn"``.
        min_face_size: faces whose box side is below this many pixels are skipped as too small
            (default: the detector's reach, :data:`df2net.config.MIN_FACE_SIZE`); a result's
            ``skipped`` names them.
        max_megapixels: a photo file with more pixels (in millions) is refused from its header,
            before it is decoded (:data:`df2net.config.MAX_IMAGE_PIXELS`). Arrays are taken as
            they are.
        threads: the network's threads (default: the physical cores; see
            :func:`df2net.backends.make_backend`).

    With the ``onnxruntime`` backend and its exported network found, no PyTorch is imported;
    :attr:`model` builds the PyTorch network when it is asked for.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "cpu",
        crop_config: CropConfig = CropConfig(),
        mask_config: MaskConfig = MaskConfig(),
        max_batch: int = 4,
        backend: str = "auto",
        detector: str = "auto",
        min_face_size: int = _config.MIN_FACE_SIZE,
        max_megapixels: float = _config.MAX_MEGAPIXELS,
        threads: int | None = None,
    ) -> None:
        from df2net.backends import make_backend, resolve_backend
        from df2net.face import FaceDetector
        from df2net.io import megapixels_to_pixels
        from df2net.model.weights import load_model, open_model

        self.limit_pixels = megapixels_to_pixels(max_megapixels)  # a bad value fails first
        self.device = str(device)
        # An unusable choice fails before the weights load. ONNX Runtime may need no PyTorch
        # network (an exported one is found): the weights are read, their network built on use.
        runs_in = resolve_backend(backend, self.device)
        open_weights = open_model if runs_in == "onnxruntime" else load_model
        loaded = self._loaded = open_weights(weights, device=self.device)
        self.model_config = loaded.config
        self.backend = make_backend(loaded, backend, self.device, threads)
        weights_path = getattr(loaded, "path", None) or weights
        self.model_info = {
            "weights": Path(weights_path).name if weights_path else "",  # file name only, never a path
            "config": self.model_config.name,
            "sha256": str(loaded.metadata.get("sha256", "")),
            "backend": self.backend.name,
        }
        self.detector = FaceDetector(min_face_size=min_face_size, detector=detector)
        self.crop_config = crop_config
        self.mask_config = mask_config
        self.max_batch = max_batch

    @property
    def model(self) -> DF2Net:
        """The network in PyTorch (eval mode), built on first use for a backend that needs none."""
        return self._loaded.model

    def __call__(self, image: np.ndarray | str | Path, source: str | None = None) -> FaceList[FaceResult]:
        """Reconstruct every face in ``image`` (an RGB array or a path to a photo).

        Returns the faces, left to right, as a list whose ``skipped`` names the faces found but
        not reconstructed, each with its reason (:class:`~df2net.detection.SkippedFace`: too
        small, not confirmed).

        Raises :class:`~df2net.errors.InputError` naming the source when the file cannot be read
        or holds no usable face.
        """
        crops, source, timings = self.crop_faces(image, source)
        return self.reconstruct_crops(crops, source, timings)

    def crop_faces(
        self, image: np.ndarray | str | Path, source: str | None = None
    ) -> tuple[list[FaceCrop], str, dict[str, float]]:
        """The part of :meth:`__call__` before the network: load ``image`` and cut out its faces.

        Returns the crops (a :class:`~df2net.detection.FaceList`, with ``skipped``), the source
        name and the timings so far (``load_s``, ``detect_crop_s``); raises
        :class:`~df2net.errors.InputError` as :meth:`__call__` does.
        """
        from df2net.face import detect_and_crop
        from df2net.io import load_image

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if isinstance(image, (str, Path)):
            source = source or str(image)
            rgb = load_image(image, source=source, limit_pixels=self.limit_pixels).rgb
        else:
            rgb, source = _as_rgb(image, source or "<array>"), source or "<array>"
        timings["load_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        crops = detect_and_crop(
            rgb, source, detector=self.detector, crop_cfg=self.crop_config, mask_cfg=self.mask_config
        )
        timings["detect_crop_s"] = time.perf_counter() - t0
        return crops, source, timings

    def predict_depth(self, crops: list[FaceCrop]) -> dict[str, np.ndarray]:
        """Depth of each stage for crops, ``{stage: (B, S, S)}`` in crop pixels, batched."""
        parts: dict[str, list[np.ndarray]] = {s: [] for s in STAGES}
        for start in range(0, len(crops), self.max_batch):
            chunk = crops[start : start + self.max_batch]
            images = np.stack([c.image for c in chunk])
            masks = np.stack([c.mask for c in chunk])
            depths = predict_stage_depths(self.backend, self.model_config, images, masks, self.device)
            for name in STAGES:
                parts[name].append(depths[name])
        return {name: np.concatenate(v) for name, v in parts.items()}

    def reconstruct_crops(
        self, crops: list[FaceCrop], source: str, timings: dict[str, float] | None = None
    ) -> FaceList[FaceResult]:
        """Run the network on already-made crops (one batch per photo) and wrap the results
        (with the crops' ``skipped``, when they are a :class:`~df2net.detection.FaceList`)."""
        return self.reconstruct_batch([(crops, source, dict(timings or {}))])[0]

    def reconstruct_batch(
        self, photos: Sequence[tuple[list[FaceCrop], str, dict[str, float]]]
    ) -> list[FaceList[FaceResult]]:
        """Run the network over the faces of several photos at once and wrap them per photo.

        ``photos`` holds ``(crops, source, timings)`` as :meth:`crop_faces` returns them; the
        faces of all of them go through :meth:`predict_depth` together (``max_batch`` at a time),
        and each photo's ``network_s`` is its faces' share of the time.
        """
        jobs: list[tuple[FaceCrop, int, str, dict[str, float]]] = []
        for crops, source, timings in photos:
            share = per_face(timings, len(crops))
            jobs += [(crop, i, source, share) for i, crop in enumerate(crops)]
        made = iter(self.reconstruct_faces(jobs))
        results: list[FaceList[FaceResult]] = []
        for crops, _, _ in photos:
            faces: FaceList[FaceResult] = FaceList(skipped=skipped_of(crops))
            faces.extend(next(made) for _ in crops)
            results.append(faces)
        return results

    def reconstruct_faces(self, faces: Sequence[tuple[FaceCrop, int, str, dict[str, float]]]) -> list[FaceResult]:
        """Run the network over faces of any photos (``max_batch`` at a time) and wrap each.

        ``faces`` holds ``(crop, index, source, timings)``: a crop of :meth:`crop_faces`, its
        index in its photo, the photo's source and the face's share of the photo's timings so
        far; each result's timings add ``network_s``, this call's time per face.
        """
        t0 = time.perf_counter()
        depths = self.predict_depth([crop for crop, _, _, _ in faces]) if faces else {}
        network_per_face = (time.perf_counter() - t0) / max(len(faces), 1)
        return [
            FaceResult.from_crop(
                crop,
                index,
                source,
                {name: depths[name][k] for name in STAGES},
                {**timings, "network_s": network_per_face},
                self.model_info,
            )
            for k, (crop, index, source, timings) in enumerate(faces)
        ]


def _normalise_depth(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift depth so its minimum inside the mask is 0; zero outside the mask."""
    depth = depth.astype(np.float32)
    if mask.any():
        depth = depth - float(depth[mask].min())
    return np.where(mask, depth, 0.0).astype(np.float32)


def _as_rgb(image: np.ndarray, source: str) -> np.ndarray:
    """Accept an (H, W), (H, W, 3) or (H, W, 4) uint8 array; return (H, W, 3) uint8 RGB."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise InputError(source, f"unsupported array dtype {arr.dtype} (expected uint8)")
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        return (arr[..., :3].astype(np.float32) * alpha + 0.5).astype(np.uint8)
    raise InputError(source, f"unsupported array shape {arr.shape}")
