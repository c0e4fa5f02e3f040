"""Fitting the Surrey Face Model to a photo's 68 landmarks (eos), and its depth in the crop.

eos fits a scaled-orthographic camera, 63 shape coefficients and 6 expression blendshapes to the
landmarks (``fit_shape_and_pose``, about 50 ms). :class:`FaceFit` keeps the result as plain arrays:
the fitted mesh projected into image pixels ``(u, v, z)`` with ``z`` in the same pixels, larger =
nearer (``docs/conventions.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from df2net.data.sfm import SurreyModel

__all__ = ["FaceFit", "fit_face_model", "fit_landmarks", "project_with_pose", "to_crop_frame"]


@dataclass(eq=False)
class FaceFit:
    """A 3DMM fitted to one face of an image.

    Attributes:
        shape_coeffs: ``(K,)`` shape coefficients (standard deviations).
        expression_coeffs: ``(E,)`` blendshape weights.
        rotation: ``(3, 3)`` model-to-camera rotation (X right, Y up, Z toward the viewer).
        yaw_pitch_roll: degrees, as eos reports them.
        scale: image pixels per millimetre.
        vertices: ``(N, 3)`` model-space vertices of the fitted shape (mm).
        screen: ``(N, 3)`` the vertices in image pixels ``(u, v, z)``, z larger = nearer.
        image_size: ``(width, height)`` of the image fitted.
        eos_mesh, eos_pose: eos's own mesh and rendering parameters (for texture extraction).
    """

    shape_coeffs: np.ndarray
    expression_coeffs: np.ndarray
    rotation: np.ndarray
    yaw_pitch_roll: tuple[float, float, float]
    scale: float
    vertices: np.ndarray
    screen: np.ndarray
    image_size: tuple[int, int]
    eos_mesh: Any = field(default=None, repr=False)
    eos_pose: Any = field(default=None, repr=False)

    def params(self) -> dict[str, Any]:
        """JSON-ready description of the fit."""
        return {
            "shape_coeffs": [round(float(c), 5) for c in self.shape_coeffs],
            "expression_coeffs": [round(float(c), 5) for c in self.expression_coeffs],
            "rotation": np.round(self.rotation, 6).tolist(),
            "yaw_pitch_roll_deg": [round(float(a), 3) for a in self.yaw_pitch_roll],
            "scale_px_per_mm_image": round(float(self.scale), 6),
            "image_size": list(self.image_size),
        }


def fit_landmarks(
    model: SurreyModel,
    landmarks: np.ndarray,
    width: int,
    height: int,
    num_iterations: int = 5,
    lambda_identity: float = 30.0,
    lambda_expressions: float = 30.0,
) -> FaceFit:
    """Fit pose, shape and expression to 68 landmarks ``(u, v)`` of a ``width x height`` image."""
    import eos

    objs = model.eos_objects()
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    eos_landmarks = [eos.core.Landmark(str(i + 1), [float(x), float(y)]) for i, (x, y) in enumerate(lm)]
    mesh, pose, shape_coeffs, expr_coeffs = eos.fitting.fit_shape_and_pose(
        objs["model"],
        eos_landmarks,
        objs["mapper"],
        int(width),
        int(height),
        objs["edge_topology"],
        objs["contour_landmarks"],
        objs["model_contour"],
        num_iterations=num_iterations,
        lambda_identity=lambda_identity,
        lambda_expressions=lambda_expressions,
    )
    vertices = np.asarray(mesh.vertices, np.float64)
    modelview = np.asarray(pose.get_modelview(), np.float64)
    screen, scale = project_with_pose(vertices, pose, width, height)
    return FaceFit(
        shape_coeffs=np.asarray(shape_coeffs, np.float64),
        expression_coeffs=np.asarray(expr_coeffs, np.float64),
        rotation=modelview[:3, :3].copy(),
        yaw_pitch_roll=tuple(float(a) for a in pose.get_yaw_pitch_roll()),
        scale=scale,
        vertices=vertices,
        screen=screen,
        image_size=(int(width), int(height)),
        eos_mesh=mesh,
        eos_pose=pose,
    )


def fit_face_model(model: Any, landmarks: np.ndarray, width: int, height: int) -> Any:
    """The landmark fit of ``model``'s world (its ``fit_landmarks``): eos for the Surrey model, :mod:`df2net.data.ict_fit` for the ICT one.

    Both results have ``vertices``, ``screen``, ``rotation``, ``scale``, ``image_size`` and ``params()``.
    """
    return model.fit_landmarks(landmarks, width, height)


def project_with_pose(vertices: np.ndarray, pose: Any, width: int, height: int) -> tuple[np.ndarray, float]:
    """Model-space vertices ``(N, 3)`` (mm) through an eos pose into image pixels ``(u, v, z)``.

    Returns the projected vertices (z in the same pixels, larger = nearer) and the scale in
    image pixels per millimetre (the pose is scaled-orthographic).
    """
    modelview = np.asarray(pose.get_modelview(), np.float64)
    projection = np.asarray(pose.get_projection(), np.float64)
    homo = np.c_[np.asarray(vertices, np.float64), np.ones(len(vertices))]
    view = homo @ modelview.T
    clip = view @ projection.T
    scale = float(projection[0, 0] * width / 2.0)  # orthographic: pixels per model unit (mm)
    screen = np.empty((len(homo), 3))
    screen[:, 0] = (clip[:, 0] + 1.0) * width / 2.0
    screen[:, 1] = (1.0 - clip[:, 1]) * height / 2.0
    screen[:, 2] = view[:, 2] * scale
    return screen, scale


def to_crop_frame(screen: np.ndarray, crop_box: tuple[float, ...], size: int) -> np.ndarray:
    """Image-pixel vertices ``(u, v, z)`` to the crop frame; z scaled like u and v.

    ``crop_box`` is ``(x0, y0, side[, angle])``: (u, v) are turned with a turned crop (about the
    view axis, so z is unchanged but for the scale). Uses :func:`df2net.cropbox.image_to_crop`
    (crop pixel centres), so a mesh projected with it lines up with
    :func:`df2net.face.crop_face`'s image.
    """
    from df2net.cropbox import image_to_crop

    s = np.asarray(screen, np.float64)
    out = np.empty_like(s)
    out[:, :2] = image_to_crop(s[:, :2], crop_box, size)
    out[:, 2] = s[:, 2] * size / float(crop_box[2])
    return out


def fit_photo_sample(
    rgb: np.ndarray,
    model: SurreyModel,
    detector: Any = None,
    source: str = "<image>",
    subdivision_levels: int = 2,
    smooth_crop_px: float = 1.2,
) -> tuple[Any, FaceFit, Any]:
    """The training sample of a real photo: its crop, and the fitted 3DMM's depth in that crop.

    The largest face is detected and cropped exactly as at inference (``df2net.face``); the
    fitted mesh, Loop-subdivided, is projected straight into the crop frame (z scaled with u and v)
    and rasterized at the crop's resolution, then smoothed a little (the 3DMM is faceted); the
    normals come from that depth.

    Returns:
        ``(sample, fit, face_crop)``: a :class:`df2net.data.synthetic.Sample` (no detail: its
        ``depth_base`` and ``detail_mask`` are None), the fit, and the crop.

    Raises:
        InputError: no face found.
    """
    from df2net import config
    from df2net.data.sample import Sample
    from df2net.data.sfm import DEPTH_OFFSET_MM
    from df2net.data.surface import render_depth
    from df2net.errors import InputError
    from df2net.face import crop_face, default_detector
    from df2net.geometry import depth_to_normals

    detector = detector if detector is not None else default_detector()
    faces = detector.detect(rgb)
    if not faces:
        raise InputError(source, "no face found")
    det = max(faces, key=lambda f: f.side)
    h, w = rgb.shape[:2]
    fit = fit_face_model(model, det.landmarks, w, h)
    fc = crop_face(rgb, det)
    size = config.CROP_SIZE
    screen = to_crop_frame(fit.screen, fc.crop_box, size)
    px_per_mm = fit.scale * size / float(fc.crop_box[2])
    screen[:, 2] += DEPTH_OFFSET_MM * px_per_mm  # positive depth on the surface
    depth, surface = render_depth(model, screen, size, subdivision_levels, smooth_crop_px)
    normals = depth_to_normals(depth, surface)
    params = {
        "kind": "fits",
        "face_model": model.name,
        "source": str(source),
        **fit.params(),
        "px_per_mm": round(px_per_mm, 6),
        "depth_offset_mm": DEPTH_OFFSET_MM,
        "detection": {"box": [round(float(b), 2) for b in det.box], "score": round(float(det.score), 4)},
        "crop_box": [round(float(b), 4) for b in fc.crop_box],
        "subdivision_levels": subdivision_levels,
        "depth_smoothing_crop_px": smooth_crop_px,
    }
    sample = Sample(
        image=fc.image,
        mask=fc.mask & surface,
        depth=depth.astype(np.float32),
        depth_base=None,
        normals=normals,
        detail_mask=None,
        landmarks=fc.landmarks.astype(np.float32),
        params=params,
    )
    return sample, fit, fc
