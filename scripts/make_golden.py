"""Store the reference depth of the bundled sample photo for the shipped weights.

    python scripts/make_golden.py     # writes tests/fixtures/astronaut_reference_depth.npz

Run it after shipping new weights; tests/test_shipped_weights.py compares against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from df2net import Reconstructor
from df2net.model.weights import default_weights_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "df2net" / "samples" / "astronaut.png"
OUT = ROOT / "tests" / "fixtures" / "astronaut_reference_depth.npz"
STEP = 8  # every 8th pixel: a 64x64 reference, small enough to commit


def main() -> None:
    weights = default_weights_path()
    face = Reconstructor(backend="torch")(SAMPLE)[0]
    np.savez_compressed(
        OUT,
        **{name: d[::STEP, ::STEP].astype(np.float32) for name, d in face.stages.items()},
        mask=face.mask[::STEP, ::STEP],
        weights_sha256=np.array(face.model_info["sha256"]),
        weights_file=np.array(weights.name if weights else ""),
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
