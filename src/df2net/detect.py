"""Face detection's public names, from :mod:`df2net.detection` (their home), so that
``from df2net.detect import FaceDetector`` keeps working."""

from df2net.detection import *  # noqa: F403
from df2net.detection import __all__  # noqa: F401
