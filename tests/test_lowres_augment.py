"""The small-face augmentation (df2net.train.augment.low_resolution): off unless configured."""

from __future__ import annotations

import numpy as np
import torch

from df2net.train import augment as aug
from df2net.train.config import AugmentConfig


def _stripes(n: int = 128, period: int = 4) -> torch.Tensor:
    u = torch.arange(n, dtype=torch.float32)
    row = 0.5 + 0.5 * torch.sin(2 * torch.pi * u / period)
    return row.expand(3, n, n).clone()


def test_low_resolution_removes_what_a_small_face_cannot_hold_and_keeps_the_rest():
    fine, coarse = _stripes(period=4), _stripes(period=64)
    # Shrunk to a quarter, a 4-pixel period is beyond the small image's Nyquist limit: gone.
    assert aug.low_resolution(fine, 0.25).std() < 0.05 * fine.std()
    # A 64-pixel period (16 px once shrunk) comes back almost unchanged.
    assert (aug.low_resolution(coarse, 0.25) - coarse).abs().max() < 0.08
    out = aug.low_resolution(coarse, 0.4)
    assert out.shape == coarse.shape and out.min() >= 0 and out.max() <= 1


def test_lowres_is_off_by_default_and_draws_nothing_then():
    assert AugmentConfig().lowres_prob == 0.0
    img = _stripes(period=4)
    cfg = AugmentConfig(blur_prob=0, jpeg_prob=0, noise_prob=0, occlusion_prob=0)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    aug.photometric(img, a, cfg)
    aug.photometric(img, b, AugmentConfig(**{**cfg.__dict__, "lowres_prob": 0.0}))
    assert a.random() == b.random()  # the same random stream: old runs replay unchanged


def test_lowres_on_shrinks_the_input_detail():
    img = _stripes(period=4)
    quiet = {k: 0.0 for k in ("brightness", "contrast", "saturation", "hue", "gamma", "tint", "blur_prob", "jpeg_prob", "noise_prob", "occlusion_prob")}
    off = aug.photometric(img, np.random.default_rng(0), AugmentConfig(**quiet))
    on = aug.photometric(img, np.random.default_rng(0), AugmentConfig(**quiet, lowres_prob=1.0, lowres_scale=(0.25, 0.3)))
    assert (off - img).abs().max() < 1e-5
    assert on.std() < 0.2 * img.std()
