"""The ``df2net`` command: batches, bad files, exit status, no half-written outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from df2net import __version__
from df2net.cli import main


def test_version_from_entry_point_and_module(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out
    out = subprocess.run([sys.executable, "-m", "df2net", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_batch_goes_on_past_bad_files_and_exits_nonzero(
    random_weights, sample_photo, tmp_path: Path, capsys
) -> None:
    from PIL import Image

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "notes.png").write_text("this is not an image")
    Image.new("RGB", (200, 200), (90, 120, 150)).save(inputs / "wall.jpg")
    truncated = inputs / "cut.png"
    truncated.write_bytes(sample_photo.read_bytes()[:5000])
    out = tmp_path / "out"
    code = main(["reconstruct", str(sample_photo), str(inputs), "-o", str(out), "--weights",
                 str(random_weights), "-q", "--formats", "depth,metadata"])
    err = capsys.readouterr().err
    assert code == 1
    assert (out / "astronaut" / "face0" / "depth.npy").exists()
    assert "notes.png: not an image" in err
    assert "wall.jpg: no face found" in err
    assert "cut.png: truncated or corrupt image" in err
    assert "Traceback" not in err
    assert not [p for p in out.rglob("*") if ".part" in p.name]


def test_all_good_inputs_exit_zero(random_weights, sample_photo, tmp_path: Path) -> None:
    code = main(["reconstruct", str(sample_photo), "-o", str(tmp_path), "--weights", str(random_weights),
                 "-q", "--formats", "depth"])
    assert code == 0


def test_bad_arguments_are_one_line_errors(random_weights, sample_photo, tmp_path: Path, capsys) -> None:
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path), "--formats", "stl"]) == 2
    assert "unknown format" in capsys.readouterr().err
    assert main(["reconstruct", str(sample_photo), "-o", str(tmp_path), "--weights", "missing.safetensors"]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "empty_dir_that_is_missing"), "-o", str(tmp_path),
                 "--weights", str(random_weights)]) == 1


def test_max_megapixels_refuses_larger_photos_before_decoding(
    random_weights, sample_photo, tmp_path: Path, capsys, monkeypatch
) -> None:
    from PIL import ImageFile

    import df2net.reconstruct

    out = tmp_path / "out"
    args = ["reconstruct", str(sample_photo), "-o", str(out), "--weights", str(random_weights), "-q",
            "--formats", "depth"]

    def no_decoding(self, *a, **k):
        raise AssertionError("decoded")

    with monkeypatch.context() as m:
        m.setattr(ImageFile.ImageFile, "load", no_decoding)
        assert main([*args, "--max-megapixels", "0.25"]) == 1  # the sample is 512 x 512
    err = capsys.readouterr().err
    assert f"{sample_photo}: image too large (512 x 512 = 0.3 megapixels; the limit is 0.25)" in err
    assert not (out / "astronaut").exists()
    assert main([*args, "--max-megapixels", "0.27"]) == 0

    built: list[dict] = []

    def record(**kwargs):
        built.append(kwargs)
        raise ValueError("recorded")

    monkeypatch.setattr(df2net.reconstruct, "Reconstructor", record)
    assert main([*args, "--max-megapixels", "12.5"]) == main(args) == 2
    assert built[0]["max_megapixels"] == 12.5 and "max_megapixels" not in built[1]  # default: the API's
    for bad in ("0", "-3", "nan", "many"):
        with pytest.raises(SystemExit) as info:
            main([*args, "--max-megapixels", bad])
        assert info.value.code == 2
        assert "--max-megapixels: must be a positive number of megapixels" in capsys.readouterr().err


def test_make_data_inputs_may_follow_options(tmp_path: Path, capsys) -> None:
    """``make-data synthetic --face-model sfm photos/`` (the recipe's order) keeps its inputs;
    a stray option is still a one-line error."""
    from df2net.cli import build_parser, parse_args

    parser = build_parser()
    args = parse_args(parser, ["make-data", "synthetic", "--face-model", "sfm", "a/", "--out", "o", "b.png"])
    assert args.kind == "synthetic" and args.inputs == ["a/", "b.png"] and args.face_model == "sfm"
    args = parse_args(parser, ["make-data", "fits", "a/", "--out", "o"])
    assert args.inputs == ["a/"]
    with pytest.raises(SystemExit) as info:
        parse_args(parser, ["make-data", "fits", "a/", "--out", "o", "--no-such-option"])
    assert info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
