"""The mouth and eye regions drawn from 68 landmarks (:mod:`df2net.face_regions`)."""

from __future__ import annotations

import numpy as np
from conftest import load_script

from df2net import face_regions
from df2net.face_regions import EYES, EYES_WIDEN, MOUTH, MOUTH_WIDEN, expression_regions, region_mask

#: Centres (u, v) in a 512 crop of the eyes and the mouth of :func:`synthetic_landmarks`.
EYE_CENTRES = ((196.0, 235.0), (316.0, 235.0))
MOUTH_CENTRE = (256.0, 345.0)


def synthetic_landmarks(dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """68 landmarks ``(u, v)`` of a frontal face in a 512 crop with an open mouth, moved by ``(dx, dy)``.

    Eyes: hexagons 44 x 16 px around :data:`EYE_CENTRES` (eye corners 36 and 45 are 164 px apart);
    outer lips: an ellipse 80 x 36 px around :data:`MOUTH_CENTRE` (bottom at v = 363).
    """
    lm = np.zeros((68, 2))
    s = np.linspace(0.0, np.pi, 17)
    lm[0:17] = np.stack([256 - 130 * np.cos(s), 250 + 170 * np.sin(s)], 1)  # jaw
    lm[17:22] = np.stack([np.linspace(160, 230, 5), np.full(5, 190)], 1)  # brows
    lm[22:27] = np.stack([np.linspace(282, 352, 5), np.full(5, 190)], 1)
    lm[27:31] = np.stack([np.full(4, 256), np.linspace(230, 300, 4)], 1)  # nose
    lm[31:36] = np.stack([np.linspace(236, 276, 5), np.full(5, 310)], 1)
    hexagon = np.array([[-22, 0], [-8, -8], [8, -8], [22, 0], [8, 8], [-8, 8]], float)
    lm[36:42] = np.array(EYE_CENTRES[0]) + hexagon
    lm[42:48] = np.array(EYE_CENTRES[1]) + hexagon
    k = np.arange(12) * 2 * np.pi / 12
    lm[48:60] = np.array(MOUTH_CENTRE) + np.stack([-40 * np.cos(k), -18 * np.sin(k)], 1)
    k = np.arange(8) * 2 * np.pi / 8
    lm[60:68] = np.array(MOUTH_CENTRE) + np.stack([-28 * np.cos(k), -8 * np.sin(k)], 1)
    return (lm + np.array([dx, dy])).astype(np.float32)


def test_regions_cover_the_mouth_and_eyes_widened_and_nothing_far_away() -> None:
    lm = synthetic_landmarks()
    mouth = region_mask(lm, MOUTH, MOUTH_WIDEN, 512)
    eyes = region_mask(lm, EYES, EYES_WIDEN, 512)
    both = expression_regions(lm, 512)
    assert both.shape == (512, 512) and both.dtype == bool
    assert np.array_equal(both, mouth | eyes)
    u, v = (int(c) for c in MOUTH_CENTRE)
    assert mouth[v, u] and mouth[v, u - 38] and mouth[v, u + 38]  # inside the lips, to the corners
    # Widened by round(0.06 * 164) = 10 px below the lowest lip point (v = 363), not 14.
    assert mouth[363 + 8, u] and not mouth[363 + 14, u]
    for cu, cv in EYE_CENTRES:
        u, v = int(cu), int(cv)
        assert eyes[v, u] and not mouth[v, u]
        # Widened by round(0.12 * 164) = 20 px below the lower lid (v = 243), not 26.
        assert eyes[243 + 18, u] and not eyes[243 + 26, u]
    for u, v in ((256, 120), (256, 290), (130, 320), (256, 420)):  # forehead, nose, cheek, chin
        assert not both[v, u], (u, v)
    assert both.mean() < 0.05
    # The map moves with the landmarks.
    moved = expression_regions(synthetic_landmarks(dx=-30.0, dy=10.0), 512)
    assert np.array_equal(moved[10:, : 512 - 30], both[:-10, 30:])


def test_the_expression_script_uses_the_library_rule() -> None:
    script = load_script("expression_regions")
    assert script.region_mask is face_regions.region_mask
    assert (script.MOUTH, script.EYES) == (MOUTH, EYES)
    assert MOUTH == (tuple(range(48, 60)),) and EYES == (tuple(range(36, 42)), tuple(range(42, 48)))
    assert (MOUTH_WIDEN, EYES_WIDEN) == (0.06, 0.12)
