"""The facts every stage of df2net shares, each stated once.

Crop geometry, the mask rule and the network input size live here and are imported wherever
they are needed, so a crop made for training is the crop made at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Side of the square face crop fed to the network, in pixels (the paper's 512x512).
CROP_SIZE: int = 512

#: Largest photo accepted, in pixels (100 megapixels: a 200-megapixel phone photo needs the
#: option raised): a bigger one is refused from its file's
#: header, before it is decoded (a 400-megapixel PNG of 1 MB would take 18 s and 2.6 GB). The one
#: limit of every way in: ``df2net reconstruct --max-megapixels``, ``Reconstructor(max_megapixels=)``,
#: ``df2net.io.load_image(limit_pixels=)``, both batch engines and the web demo.
MAX_IMAGE_PIXELS: int = 100_000_000

#: :data:`MAX_IMAGE_PIXELS` in megapixels, the unit of the CLI and the Python API.
MAX_MEGAPIXELS: float = MAX_IMAGE_PIXELS / 1_000_000

#: Pixel budget of a decoded photo: one accepted over it (the limit raised above) is downscaled
#: to it on load, before detection.
WORKING_IMAGE_PIXELS: int = 40_000_000

#: The detector's reach and the default minimum face size, in pixels of box side: the HOG search
#: is scaled to find faces this small (``DetectConfig.search_size``), and a face found smaller is
#: skipped as too small (``--min-face-size``, ``Reconstructor(min_face_size=)``) and named as such
#: (``photo.json``'s ``skipped_faces``). Every face the detector reaches is reconstructed: a 40-px
#: face (blown up about 6x into the 512-pixel crop) keeps its depth within 1.8 % of its range of
#: the same face at full size (README, "Small faces").
MIN_FACE_SIZE: int = 40


#: dlib detector score below which a detection is ignored. Its own default threshold (0) lets
#: through e.g. the mission patch on the astronaut sample (score 0.12); the 25 demo faces score
#: 0.74-3.0.
MIN_FACE_SCORE: float = 0.3


@dataclass(frozen=True)
class DetectConfig:
    """How :mod:`df2net.detection` finds faces (numbers from ``benchmarks/detectors.py``).

    ``detector`` names an entry of :data:`df2net.detection.DETECTORS`: ``"auto"`` (dlib's HOG
    detector proposes candidates at a low score, each is turned upright by its landmarks and
    confirmed by dlib's CNN detector), ``"hog"`` (HOG alone, score ``MIN_FACE_SCORE``) or
    ``"cnn"`` (the CNN over the whole photo: slow).

    The HOG search is scaled so a face of ``search_size`` pixels (box side; the detector's reach,
    :data:`MIN_FACE_SIZE`) is found, but scans
    at most ``max_search_pixels``: a bigger photo is searched for somewhat larger faces only. A
    photo whose longer side is under ``upsample_below_side`` is searched at twice its size (cheap
    there, and HOG's boxes, which come in 20 % steps, are then those the crop rule was tuned on
    and the shipped weights were trained with). With ``scan_threads`` > 1 the search is cut into
    that many overlapping strips, scanned side by side (dlib lets go of the GIL while it scans),
    and a coarse scan for the largest faces: 10-15 % more CPU for the scan, about 0.65x its time
    on two free cores, the same faces found, but HOG's boxes (so the crops) of some faces differ
    from one scan's by its own noise; hence 1 by default.
    ``roll_copies`` are extra HOG searches of the photo turned by those angles (degrees), at a
    coarse scale that finds faces from ``roll_copy_size`` pixels; they catch faces rolled past
    what the upright search proposes (about 45 degrees). A face whose eye line is turned more
    than ``relevel_deg`` from the frame it was found in gets its box and landmarks again in the
    eye-level frame. ``verify_box`` is the face box side (pixels) the CNN sees a candidate at,
    ``verify_score`` the CNN confidence it must reach, ``verify_min_hog`` the HOG score (in the
    eye-level frame) a candidate needs to be shown to the CNN at all, ``verify_below`` the HOG
    score from which a candidate is taken on HOG's word without the CNN's look (the CNN costs
    about 0.1 s of CPU a candidate; on the benchmark photos 80 of 85 faces scored 1.0 or more, no
    false candidate above 0.57; ``math.inf`` shows it every candidate, as before). A confirmed face HOG
    scored below ``probe_below`` is looked for in frames turned further (it may be rolled more
    than its first landmarks show). The landmarks are placed again on the box they imply
    (settled) unless the face is turned: its nose tip more than ``settle_max_turn`` of the eye
    span from the middle (:func:`df2net.detection.landmarks.turn_share`; 0.15 is about 20 degrees of yaw).
    ``face_box`` says which box the crop is placed around: ``"landmarks"`` (the default) the
    HOG-like box the settled landmarks imply (:func:`df2net.detection.landmarks.landmark_box`, fitted to HOG's
    boxes), for every face but a turned one, which keeps the detector's; ``"detector"`` always
    the detector's. HOG's boxes come in 20 % steps of size, so the same face at another size got a
    crop up to 10 % larger or smaller: with the landmarks' box a 112-px face's depth differs from
    the same face's at full size by 1.4 % of its range instead of 2.5 %, its normals by 1.4°
    instead of 2.4° (``benchmarks/small_faces.py``).
    """

    detector: str = "auto"
    search_size: int = MIN_FACE_SIZE
    max_search_pixels: int = 5_000_000
    upsample_below_side: int = 1000
    scan_threads: int = 1
    candidate_score: float = -1.0
    roll_copies: tuple[float, ...] = ()
    roll_copy_size: int = 100
    relevel_deg: float = 10.0
    verify_box: int = 80
    verify_score: float = 0.3
    verify_min_hog: float = -0.5
    verify_below: float = 1.0
    probe_below: float = 0.5
    settle_max_turn: float = 0.15
    face_box: str = "landmarks"


@dataclass(frozen=True)
class CropConfig:
    """How the square crop is placed around a detected face box.

    The crop side is ``scale`` times the face box side (dlib's HOG box, which spans about brows
    to chin); its centre is the box centre moved up by ``shift_up`` times the box side, so the
    head, not only the masked face, is in the crop. The defaults were tuned on the 25 DF2Net
    demo photos: the mask polygon (with its raised forehead) lies at least 6.5% of the crop side
    inside every edge of every crop (binding case: an open mouth, 22.png), the mask spans about
    57% of the crop's height and 48% of its width, and the whole head is in view. (The original
    DF2Net widened a looser OpenCV Haar box by 1.5 and moved it up-left by 0.2.)
    """

    size: int = CROP_SIZE
    scale: float = 2.0
    shift_up: float = 0.1


@dataclass(frozen=True)
class MaskConfig:
    """The face mask rule: the jaw line closed over the forehead.

    The forehead points are the outer eyebrow ends raised by ``forehead_raise`` times the
    distance between the inner eye corners (landmarks 40 and 43, 1-based).
    """

    forehead_raise: float = 1.0
