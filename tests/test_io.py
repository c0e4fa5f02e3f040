"""Loading photos safely (df2net.io.load_image, iter_image_files) and atomic writes."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from df2net import config
from df2net import io as dio
from df2net.errors import InputError
from df2net.io import LoadedImage, atomic_path, iter_image_files, load_image, write_text_atomic


def cause_of(source, **kwargs) -> str:
    """The one-line cause of the InputError that loading ``source`` raises."""
    with pytest.raises(InputError) as info:
        load_image(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.endswith(info.value.cause)
    return info.value.cause


def save(im: Image.Image, path: Path, **kwargs) -> Path:
    im.save(path, **kwargs)
    return path


def pattern_rgb(w: int = 60, h: int = 40) -> np.ndarray:
    """An asymmetric test card: grey, a red block top-left, a blue block bottom-right."""
    a = np.full((h, w, 3), 128, dtype=np.uint8)
    a[: h // 4, : w // 4] = (255, 0, 0)
    a[-h // 4 :, -w // 3 :] = (0, 0, 255)
    return a


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` but holds almost no data (a bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_grey_png(path: Path, width: int, height: int, grey: int = 128, rows_per_chunk: int = 500) -> Path:
    """A valid 8-bit grey PNG of one shade, streamed through zlib a few rows at a time.

    Its pixels never exist in memory: the first row is the shade, every other row is "same as
    the row above" (PNG filter Up, all zeros). 20000 x 20000 takes about 0.6 s and 2 MB.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(1)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        fh.write(chunk(b"IDAT", z.compress(b"\0" + bytes([grey]) * width)))
        up_rows = (b"\2" + b"\0" * width) * rows_per_chunk
        for start in range(1, height, rows_per_chunk):
            data = z.compress(up_rows[: min(rows_per_chunk, height - start) * (width + 1)])
            if data:
                fh.write(chunk(b"IDAT", data))
        fh.write(chunk(b"IDAT", z.flush()) + chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------------------------
# Files that are not images
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert cause_of(tmp_path / "nope.jpg") == "file not found"


def test_directory(tmp_path):
    assert cause_of(tmp_path) == "is a directory, not an image file"


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    assert cause_of(p) == "empty file (0 bytes)"
    assert cause_of(b"") == "empty file (0 bytes)"


def test_text_file(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n")
    assert cause_of(p) == "not an image (unrecognised file format)"
    with pytest.raises(InputError, match=r"^notes\.jpg: not an image"):
        load_image(p, source="notes.jpg")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(tmp_path, fmt):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buf, fmt)
    data = buf.getvalue()
    p = tmp_path / f"cut.{fmt.lower()}"
    p.write_bytes(data[: len(data) // 2])
    assert cause_of(p) == "truncated or corrupt image"


def test_corrupt_png_data(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(pattern_rgb()).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:80] = b"\xff" * 20  # inside the IDAT stream
    assert cause_of(bytes(data)) == "truncated or corrupt image"


def test_decompression_bomb_is_refused_without_decoding():
    w, h = 25_000, 20_000  # 500 M pixels: over config.MAX_IMAGE_PIXELS
    assert w * h > config.MAX_IMAGE_PIXELS
    assert cause_of(png_header_only(w, h)) == "image too large (25000 x 20000 = 500.0 megapixels; the limit is 100)"
    # Far beyond Pillow's own guard (179 M pixels), ours still names the size and the limit.
    assert cause_of(png_header_only(40_000, 40_000)) == (
        "image too large (40000 x 40000 = 1600.0 megapixels; the limit is 100)"
    )
    # The limit is the caller's: raised, a 400-megapixel header passes the check (and fails later,
    # here for its missing data); lowered, a small photo is refused.
    assert cause_of(png_header_only(20_000, 20_000), limit_pixels=400_000_000) == "truncated or corrupt image"
    assert cause_of(png_header_only(60, 40), limit_pixels=2_000) == (
        "image too large (60 x 40 = 0.0024 megapixels; the limit is 0.002)"
    )


def test_400_megapixel_png_is_refused_from_its_header(tmp_path, monkeypatch):
    """A real 20000 x 20000 PNG (2 MB, 400 MB decoded) is refused before any pixel is decoded."""
    big = write_grey_png(tmp_path / "grey.png", 20_000, 20_000)
    assert big.stat().st_size < 5_000_000

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(InputError) as info:
        load_image(big)
    assert str(info.value) == f"{big}: image too large (20000 x 20000 = 400.0 megapixels; the limit is 100)"
    monkeypatch.undo()

    # The same in a fresh process, whose peak memory (imports included) must stay far below the
    # 400 MB that decoding would take. The peak is its own memory's (VmHWM), not getrusage's,
    # which on Linux keeps that of the process it was started from (pytest, torch and all).
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    script = (
        "import re, sys\n"
        "from df2net.errors import InputError\n"
        "from df2net.io import load_image\n"
        "try:\n    load_image(sys.argv[1])\nexcept InputError as e:\n    print(e)\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s*(\\d+) kB', status).group(1)) // 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(big)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    message, peak_mb = done.stdout.strip().splitlines()
    assert message.endswith("grey.png: image too large (20000 x 20000 = 400.0 megapixels; the limit is 100)")
    assert int(peak_mb) < 200, f"peak {peak_mb} MB"


def test_streamed_grey_png_is_a_valid_image(tmp_path):
    rgb = load_image(write_grey_png(tmp_path / "g.png", 301, 203, grey=77, rows_per_chunk=50)).rgb
    assert rgb.shape == (203, 301, 3) and (rgb == 77).all()


def test_megapixels_to_pixels():
    assert dio.megapixels_to_pixels(config.MAX_MEGAPIXELS) == config.MAX_IMAGE_PIXELS == 100_000_000
    assert dio.megapixels_to_pixels(0.5) == 500_000
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_megapixels must be a positive number"):
            dio.megapixels_to_pixels(bad)


def test_pillow_limit_is_restored():
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InputError):
        load_image(png_header_only(25_000, 20_000))
    assert Image.MAX_IMAGE_PIXELS == before


def test_unsupported_mode_is_a_clear_error(tmp_path, monkeypatch):
    p = save(Image.fromarray(pattern_rgb()), tmp_path / "a.png")
    monkeypatch.setattr(dio, "_to_rgb8", lambda im: None)
    assert cause_of(p) == "unsupported image mode 'RGB'"

    def refuse(im):
        raise ValueError(f"conversion from {im.mode} to RGB not supported")

    monkeypatch.setattr(dio, "_to_rgb8", refuse)
    assert cause_of(p) == "unsupported image mode 'RGB'"


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def test_rgb_png_round_trip(tmp_path):
    a = pattern_rgb()
    p = save(Image.fromarray(a), tmp_path / "a.png")
    out = load_image(p)
    assert isinstance(out, LoadedImage)
    assert out.rgb.dtype == np.uint8 and out.rgb.shape == a.shape and out.rgb.flags["C_CONTIGUOUS"]
    assert (out.rgb == a).all()
    assert out.source == str(p) and out.original_size == (60, 40) and out.scale == 1.0
    assert (load_image(p.read_bytes()).rgb == a).all()
    assert load_image(p.read_bytes()).source == "<bytes>"


def test_grayscale_and_one_bit(tmp_path):
    g = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))
    out = load_image(save(Image.fromarray(g, "L"), tmp_path / "g.png")).rgb
    assert out.shape == (10, 64, 3) and (out == g[..., None]).all()
    bits = Image.fromarray(g > 127).convert("1")
    out = load_image(save(bits, tmp_path / "b.png")).rgb
    assert set(np.unique(out)) <= {0, 255} and (out[..., 0] == np.where(g > 127, 255, 0)).all()


def test_sixteen_bit_png_is_scaled_by_range(tmp_path):
    v = np.array([[0, 257, 32896, 65535, 1000, 60000]], dtype=np.uint16)
    p = save(Image.fromarray(v), tmp_path / "deep.png")
    with Image.open(p) as im:
        assert im.mode.startswith("I")
    out = load_image(p).rgb
    np.testing.assert_array_equal(out[0, :, 0], np.rint(v[0] / 257.0).astype(np.uint8))
    assert (out[..., 0] == out[..., 2]).all()


def test_thirty_two_bit_and_float_tiff(tmp_path):
    ints = np.array([[0, 1000, 30000, 65535]], dtype=np.int32)
    out = load_image(save(Image.fromarray(ints, "I"), tmp_path / "i.tif")).rgb[0, :, 0]
    np.testing.assert_array_equal(out, np.rint(ints[0] / 257.0))

    unit = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    out = load_image(save(Image.fromarray(unit, "F"), tmp_path / "f.tif")).rgb[0, :, 0]
    np.testing.assert_array_equal(out, np.rint(unit[0] * 255))

    wide = np.array([[-5.0, 0.0, 20.0, np.nan]], dtype=np.float32)  # stretched, not clipped
    out = load_image(save(Image.fromarray(wide, "F"), tmp_path / "w.tif")).rgb[0, :, 0]
    np.testing.assert_array_equal(out, [0, np.rint(5 / 25 * 255), 255, np.rint(5 / 25 * 255)])


def test_rgba_is_composited_on_black(tmp_path):
    a = np.zeros((4, 4, 4), dtype=np.uint8)
    a[..., :3] = (200, 100, 50)
    a[0, :, 3] = 0
    a[1, :, 3] = 255
    a[2, :, 3] = 128
    out = load_image(save(Image.fromarray(a, "RGBA"), tmp_path / "t.png")).rgb
    assert (out[0] == 0).all()
    assert (out[1] == (200, 100, 50)).all()
    half = np.rint(np.array([200, 100, 50]) * 128 / 255)
    assert np.abs(out[2].astype(int) - half).max() <= 1


def test_gray_with_alpha(tmp_path):
    la = Image.merge("LA", [Image.new("L", (4, 2), 200), Image.fromarray(np.array([[0] * 4, [255] * 4], np.uint8))])
    out = load_image(save(la, tmp_path / "la.png")).rgb
    assert (out[0] == 0).all() and (out[1] == 200).all()


def test_palette_with_and_without_transparency(tmp_path):
    idx = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    pal = Image.fromarray(idx, "P")
    pal.putpalette([10, 20, 30, 200, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    out = load_image(save(pal, tmp_path / "p.png")).rgb
    assert (out[0, 0] == (10, 20, 30)).all() and (out[0, 1] == (200, 0, 0)).all() and (out[1, 0] == (0, 0, 255)).all()
    out = load_image(save(pal, tmp_path / "pt.png", transparency=1)).rgb
    assert (out[0, 1] == 0).all() and (out[1, 1] == 0).all()
    assert (out[0, 0] == (10, 20, 30)).all()
    gif = load_image(save(pal, tmp_path / "pt.gif", transparency=0)).rgb
    assert (gif[0, 0] == 0).all() and (gif[0, 1] == (200, 0, 0)).all()


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (32, 16), (255, 0, 0, 0))  # pure cyan
    cmyk.paste((0, 0, 0, 255), (16, 0, 32, 16))  # black on the right
    p = save(cmyk, tmp_path / "c.jpg", quality=95)
    with Image.open(p) as im:
        assert im.mode == "CMYK"
    out = load_image(p).rgb.astype(int)
    assert np.abs(out[8, 4] - (0, 255, 255)).max() <= 6
    assert out[8, 28].max() <= 6


def test_multi_frame_uses_the_first(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100)
    out = load_image(p).rgb
    assert (out == (255, 0, 0)).all()
    t = tmp_path / "pages.tif"
    frames[0].save(t, save_all=True, append_images=frames[1:])
    assert (load_image(t).rgb == (255, 0, 0)).all()


# --------------------------------------------------------------------------------------------
# Orientation and size
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_exif_transpose(tmp_path, orientation):
    im = Image.fromarray(pattern_rgb())
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = save(im, tmp_path / f"o{orientation}.png", exif=exif)
    with Image.open(p) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    out = load_image(p)
    assert (out.rgb == expected).all()
    assert out.original_size == (expected.shape[1], expected.shape[0])
    assert out.rgb.shape[:2] == ((60, 40) if orientation >= 5 else (40, 60))
    assert np.array_equal(out.rgb, pattern_rgb()) == (orientation == 1)


def test_exif_rotated_jpeg_lands_upright(tmp_path):
    # The camera stored the picture turned 90 degrees counter-clockwise, with orientation 6
    # ("rotate 90 degrees clockwise to view") to undo it.
    upright = pattern_rgb(64, 48)  # red block top-left, blue block bottom-right
    stored = np.rot90(upright, k=1)  # counter-clockwise: 48 wide, 64 high
    exif = Image.Exif()
    exif[0x0112] = 6
    p = save(Image.fromarray(np.ascontiguousarray(stored)), tmp_path / "phone.jpg", exif=exif, quality=95)
    out = load_image(p)
    assert out.rgb.shape == upright.shape and out.original_size == (64, 48)
    assert np.abs(out.rgb[3, 3].astype(int) - (255, 0, 0)).max() < 40  # red top-left
    assert np.abs(out.rgb[-3, -3].astype(int) - (0, 0, 255)).max() < 40  # blue bottom-right
    assert np.abs(out.rgb[3, -3].astype(int) - 128).max() < 40  # grey top-right


def test_malformed_exif_does_not_cost_the_photo(tmp_path):
    p = tmp_path / "odd.jpg"
    Image.fromarray(pattern_rgb()).save(p, exif=b"Exif\x00\x00garbage-not-tiff")
    assert load_image(p).rgb.shape == (40, 60, 3)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_huge_image_is_downscaled_to_the_budget(tmp_path, fmt):
    w, h = 800, 600
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2 :] = (0, 0, 255)
    p = save(Image.fromarray(a), tmp_path / f"big.{fmt}", **({"quality": 95} if fmt == "jpg" else {}))
    out = load_image(p, max_pixels=20_000)
    oh, ow = out.rgb.shape[:2]
    assert ow * oh <= 20_000 and ow * oh > 0.95 * 20_000
    assert abs(ow / oh - w / h) < 0.02
    assert out.original_size == (w, h) and out.scale == pytest.approx(ow / w)
    assert np.abs(out.rgb[oh // 2, 2].astype(int) - (255, 0, 0)).max() < 12
    assert np.abs(out.rgb[oh // 2, -3].astype(int) - (0, 0, 255)).max() < 12


def test_downscale_of_a_rotated_photo(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    p = save(Image.fromarray(pattern_rgb(300, 200)), tmp_path / "r.png", exif=exif)
    out = load_image(p, max_pixels=6_000)
    assert out.original_size == (200, 300)
    assert out.rgb.shape[0] > out.rgb.shape[1]
    assert out.scale == pytest.approx(out.rgb.shape[1] / 200)


def test_fit_size_never_exceeds_the_budget():
    for w, h, m in [(800, 600, 20_000), (1, 10**6, 1000), (10**6, 3, 5000), (7, 7, 48)]:
        fw, fh = dio._fit_size(w, h, m)
        assert 1 <= fw <= w and 1 <= fh <= h and fw * fh <= m


# --------------------------------------------------------------------------------------------
# Input lists and atomic writes
# --------------------------------------------------------------------------------------------


def test_iter_image_files(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for name in ["b.png", "a.JPG", "c.txt", ".hidden.png", "d.Tiff", "e.webp"]:
        (d / name).write_bytes(b"x")
    (d / "sub.png").mkdir()
    named = tmp_path / "notes.txt"
    missing = tmp_path / "missing.jpg"
    got = iter_image_files([d, named, missing])
    assert got == [d / "a.JPG", d / "b.png", d / "d.Tiff", d / "e.webp", named, missing]


def test_atomic_path_leaves_nothing_behind_on_error(tmp_path):
    target = tmp_path / "out" / "mesh.obj"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".obj" and tmp.parent == target.parent
            tmp.write_text("partial")
            raise RuntimeError("writer failed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
