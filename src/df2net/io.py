"""File input and output: loading photos safely and writing outputs atomically."""

from __future__ import annotations

import contextlib
import io as _io
import math
import os
import stat
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from df2net import config
from df2net.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    An interrupted or failed write leaves no partial file under the final name.
    The temporary name keeps the suffix, so writers that dispatch on it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes files owner-only; give them the usual mode
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def current_umask() -> int:
    """The process umask (read without changing it for longer than an instant)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Loading photos
# --------------------------------------------------------------------------------------------

#: File name endings that :func:`iter_image_files` picks up from a folder (case-insensitive).
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# EXIF orientation tag value -> the transpose that makes the picture upright. The same table as
# PIL.ImageOps.exif_transpose; applied here after downscaling, so a huge photo is turned small.
_EXIF_ORIENTATION_TAG = 0x0112
_ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow's decompression-bomb limit is a module global; it is set to ours only while this module
# opens and decodes a file, under a lock, and put back afterwards.
_PIL_LIMIT_LOCK = threading.Lock()


def megapixels_to_pixels(megapixels: float) -> int:
    """A limit in megapixels (``--max-megapixels``) as a whole number of pixels.

    Raises:
        ValueError: ``megapixels`` is not a positive finite number.
    """
    value = float(megapixels)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"max_megapixels must be a positive number, got {megapixels!r}")
    return max(1, math.floor(value * 1_000_000))


def too_large_cause(width: int, height: int, limit_pixels: int) -> str:
    """The one-line cause of refusing a ``width x height`` photo over ``limit_pixels``."""
    megapixels = width * height / 1e6
    size = f"{megapixels:.1f}" if megapixels >= 0.1 else f"{megapixels:.2g}"
    return f"image too large ({width} x {height} = {size} megapixels; the limit is {limit_pixels / 1e6:g})"


@dataclass
class LoadedImage:
    """A photo decoded to 8-bit RGB, upright, and no larger than the pixel budget.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 RGB array, C-contiguous.
        source: the file name (or ``"<bytes>"``) used in messages.
        original_size: ``(width, height)`` of the upright photo before any downscale.
        scale: the downscale applied, ``rgb width / original width`` (1.0 if none). A point
            ``p`` of ``rgb`` is at ``p / scale`` in the original photo.
    """

    rgb: np.ndarray
    source: str
    original_size: tuple[int, int]
    scale: float = 1.0


def load_image(
    path_or_bytes: str | os.PathLike[str] | bytes | bytearray | memoryview,
    max_pixels: int = config.WORKING_IMAGE_PIXELS,
    *,
    source: str | None = None,
    limit_pixels: int = config.MAX_IMAGE_PIXELS,
) -> LoadedImage:
    """Decode a photo into an upright 8-bit RGB array, or say in one line why it cannot be.

    Handles every Pillow mode that is an image of light: 1-bit, grayscale (8/16/32-bit int,
    float; 16-bit and wider are scaled to 8 bits by their range, not clipped), palette, CMYK,
    YCbCr, LAB, HSV; transparent images (RGBA, LA, palette with transparency) are composited
    on black. The EXIF orientation is applied; of a multi-frame file the first frame is used.
    Photos over ``limit_pixels`` are refused from the file's header, without being decoded;
    photos over ``max_pixels`` are downscaled (area-correct Lanczos) to fit.

    Args:
        path_or_bytes: a file path, or the encoded file's bytes.
        max_pixels: pixel budget of the returned image.
        source: the name to use in messages (default: the path, or ``"<bytes>"``).
        limit_pixels: the largest photo accepted (:data:`df2net.config.MAX_IMAGE_PIXELS`; see
            :func:`megapixels_to_pixels`).

    Raises:
        InputError: the file is missing, a folder, empty, unreadable, not an image, truncated
            or corrupt, too large, or in a mode that is not a picture.
    """
    if max_pixels < 1 or limit_pixels < 1:
        raise ValueError(f"max_pixels and limit_pixels must be positive, got {max_pixels}, {limit_pixels}")
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        name = source if source is not None else "<bytes>"
        data = bytes(path_or_bytes)
        if not data:
            raise InputError(name, "empty file (0 bytes)")
        fp: Any = _io.BytesIO(data)
    else:
        path = Path(path_or_bytes)
        name = source if source is not None else str(path)
        fp = _open_file(path, name)
    try:
        return _decode(fp, name, max_pixels, limit_pixels)
    finally:
        fp.close()


def iter_image_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand the photos to process: folders become their image files, files stay as named.

    A folder gives its files (not its sub-folders) whose names end in one of
    :data:`IMAGE_EXTENSIONS`, any case, sorted by name; hidden files (``.name``) are skipped.
    Anything else is kept exactly as given, in order, so a named file that is missing or not an
    image gets its own error from :func:`load_image` later.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [
                p
                for p in path.iterdir()
                if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
            ]
            files.extend(sorted(found, key=lambda p: p.name))
        else:
            files.append(path)
    return files


def _open_file(path: Path, name: str) -> BinaryIO:
    """Open ``path`` for reading, mapping the file-system failures to one-line InputErrors."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise InputError(name, "is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise InputError(name, "not a regular file")
        if info.st_size == 0:
            raise InputError(name, "empty file (0 bytes)")
        return path.open("rb")
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(name, "file not found") from None
    except IsADirectoryError:
        raise InputError(name, "is a directory, not an image file") from None
    except PermissionError:
        raise InputError(name, "permission denied") from None
    except OSError as exc:
        raise InputError(name, f"cannot read file ({exc.strerror or _short(exc)})") from None


def _decode(fp: BinaryIO, name: str, max_pixels: int, limit_pixels: int) -> LoadedImage:
    """Open, check, fully decode and normalise one image; see :func:`load_image`.

    Pillow's own guard is off while the header is read (so that our check, which names the
    size and the limit, is the one that refuses) and set to ``limit_pixels`` while decoding
    (formats whose frames can outgrow the header, GIF, are checked again there).
    """
    with _PIL_LIMIT_LOCK:
        saved_limit = Image.MAX_IMAGE_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                Image.MAX_IMAGE_PIXELS = None
                im = _open_image(fp, name)
                try:
                    width, height = im.size
                    if width * height > limit_pixels:
                        raise InputError(name, too_large_cause(width, height, limit_pixels))
                    Image.MAX_IMAGE_PIXELS = limit_pixels
                    return _decode_opened(im, name, max_pixels, limit_pixels)
                finally:
                    im.close()
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit


def _open_image(fp: BinaryIO, name: str) -> Image.Image:
    try:
        return Image.open(fp)
    except UnidentifiedImageError:
        raise InputError(name, "not an image (unrecognised file format)") from None
    except MemoryError:
        raise InputError(name, "image too large to decode (out of memory)") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a plugin's header parser
        raise InputError(name, f"not a readable image ({_short(exc)})") from None


def _decode_opened(im: Image.Image, name: str, max_pixels: int, limit_pixels: int) -> LoadedImage:
    width, height = im.size
    if width < 1 or height < 1:
        raise InputError(name, f"empty image ({width} x {height} pixels)")

    target = _fit_size(width, height, max_pixels)
    if target != (width, height) and im.format == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the target.
        with contextlib.suppress(Exception):
            im.draft(im.mode, target)

    try:
        im.load()
    except Image.DecompressionBombError:  # a frame larger than the header said (GIF)
        cause = f"image too large (a frame over the limit of {limit_pixels / 1e6:g} megapixels)"
        raise InputError(name, cause) from None
    except MemoryError:
        raise InputError(name, "image too large to decode (out of memory)") from None
    except Exception:  # noqa: BLE001 - OSError, SyntaxError, ValueError, zlib/struct errors
        raise InputError(name, "truncated or corrupt image") from None

    # Read after load(): some formats (PNG) keep their EXIF after the pixel data.
    transpose = _ORIENTATION_TRANSPOSE.get(_exif_orientation(im))
    swaps_sides = transpose in (
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_270,
    )
    original_size = (height, width) if swaps_sides else (width, height)

    try:
        rgb_image = _to_rgb8(im)
    except InputError:
        raise
    except MemoryError:
        raise InputError(name, "image too large to decode (out of memory)") from None
    except Exception:  # noqa: BLE001 - a mode Pillow cannot convert
        raise InputError(name, f"unsupported image mode {im.mode!r}") from None
    if rgb_image is None:
        raise InputError(name, f"unsupported image mode {im.mode!r}")

    if rgb_image.size != target:
        rgb_image = rgb_image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if transpose is not None:
        rgb_image = rgb_image.transpose(transpose)

    rgb = np.ascontiguousarray(np.asarray(rgb_image, dtype=np.uint8))
    scale = 1.0 if target == (width, height) else rgb.shape[1] / original_size[0]
    return LoadedImage(rgb=rgb, source=name, original_size=original_size, scale=scale)


def _fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The size of ``width x height`` scaled down (aspect kept) to at most ``max_pixels``."""
    if width * height <= max_pixels:
        return width, height
    factor = math.sqrt(max_pixels / (width * height))
    w = max(1, math.floor(width * factor))
    h = max(1, min(math.floor(height * factor), max_pixels // w))  # a side clamped to 1 px
    w = max(1, min(w, max_pixels // h))
    return w, h


def _exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8) of ``im``; 1 when absent or unreadable."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - malformed EXIF must not cost the photo
        return 1


def _to_rgb8(im: Image.Image) -> Image.Image | None:
    """Convert a decoded image of any picture mode to 8-bit RGB; None for a mode we refuse."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        if mode == "La":
            im = im.convert("LA")
        return _composite_on_black(im.convert("RGBA"))
    if mode in ("1", "L", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return im.convert("RGB")
    if mode.startswith("I") or mode == "F":
        gray = _scale_to_uint8(np.asarray(im), mode)
        return Image.fromarray(gray, mode="L").convert("RGB")
    return None


def _composite_on_black(rgba: Image.Image) -> Image.Image:
    arr = np.asarray(rgba, dtype=np.uint16)
    alpha = arr[..., 3:4]
    rgb = (arr[..., :3] * alpha + 127) // 255
    return Image.fromarray(rgb.astype(np.uint8), mode="RGB")


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Map a 16-bit, 32-bit or float gray image to 8 bits by its range (never by clipping).

    16-bit modes use their full range 0..65535. Other integer images that fit 0..255 or
    0..65535 use that range; float images in [0, 1] use it; anything else is stretched from its
    own minimum to its maximum. Non-finite values become 0.
    """
    v = values.astype(np.float64)
    finite = np.isfinite(v)
    if not finite.all():
        v = np.where(finite, v, 0.0)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    if mode.startswith("I;16"):
        lo, hi = 0.0, 65535.0
    elif mode == "F" and lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif mode != "F" and lo >= 0 and hi <= 255:
        lo, hi = 0.0, 255.0
    elif mode != "F" and lo >= 0 and hi <= 65535:
        lo, hi = 0.0, 65535.0
    if hi <= lo:
        return np.zeros(v.shape, dtype=np.uint8)
    return np.rint((v - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def _short(exc: BaseException) -> str:
    """The first line of an exception's message, kept short, for a one-line cause."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."
