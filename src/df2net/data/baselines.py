"""The face-model baselines of ``df2net evaluate``: the mean face and the landmark fits, in the crop.

The Surrey ones fit the Surrey Face Model's pose (and, for the fit, shape and expression) to the
sample's 68 crop landmarks with eos; the ICT one fits the ICT face model's pose, identity and
expression (:mod:`df2net.data.ict_fit`), open mouth and closed eyes included. Each renders its
surface's depth into the crop, like the fits data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from df2net.data.eval_sample import Method, Sample

MEAN_FACE = "3DMM mean face"
LANDMARK_FIT = "3DMM landmark fit"
ICT_LANDMARK_FIT = "ICT landmark fit"


def fill_outside(depth: np.ndarray, valid: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Copy each ``where`` pixel not in ``valid`` from its nearest ``valid`` pixel."""
    from scipy.ndimage import distance_transform_edt

    if not valid.any():
        return depth
    missing = where & ~valid
    if not missing.any():
        return depth
    _, (rows, cols) = distance_transform_edt(~valid, return_indices=True)
    out = depth.copy()
    out[missing] = depth[rows[missing], cols[missing]]
    return out


def baseline_method(sfm_dir: str | Path | None = None, subdivision_levels: int = 1) -> Method:
    """A :data:`df2net.data.eval_sample.Method` giving the mean-face and landmark-fit depth of a sample."""
    from df2net.data.fitting import fit_landmarks, project_with_pose
    from df2net.data.sfm import load_sfm
    from df2net.data.surface import render_depth

    model = load_sfm(sfm_dir)
    mean_vertices = model.vertices()

    def render(screen: np.ndarray, mask: np.ndarray) -> np.ndarray:
        depth, surface = render_depth(model, screen, mask.shape[0], subdivision_levels, 1.2)
        return fill_outside(depth, surface, mask)

    def run(sample: Sample) -> dict[str, np.ndarray]:
        size = sample.mask.shape[0]
        fit = fit_landmarks(model, sample.landmarks, size, size)
        mean_screen, _ = project_with_pose(mean_vertices, fit.eos_pose, size, size)
        return {MEAN_FACE: render(mean_screen, sample.mask), LANDMARK_FIT: render(fit.screen, sample.mask)}

    return run


def ict_baseline_method(sfm_dir: str | Path | None = None, ict_path: str | Path | None = None, subdivision_levels: int = 1) -> Method:
    """A :data:`df2net.data.eval_sample.Method` giving the ICT landmark fit's depth of a sample."""
    from df2net.data.ict import load_ict
    from df2net.data.ict_fit import fit_ict_landmarks
    from df2net.data.surface import render_depth

    model = load_ict(ict_path, sfm_dir)

    def run(sample: Sample) -> dict[str, np.ndarray]:
        size = sample.mask.shape[0]
        fit = fit_ict_landmarks(model, sample.landmarks, size, size)
        depth, surface = render_depth(model, fit.screen, size, subdivision_levels, 1.2)
        return {ICT_LANDMARK_FIT: fill_outside(depth, surface, sample.mask)}

    return run
