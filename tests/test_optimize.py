"""Inference optimisations give the network's own answer: folded batch norms, backends, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from df2net.cpu import physical_cores
from df2net.model.df2net import ModelConfig, build_model
from df2net.model.optimize import fold_batch_norm, fuse_for_inference, transposed_as_conv

#: A small network of the original layout (D-Net and F-Net at full size, detail added to dense).
TINY = ModelConfig(name="tiny", dense_channels=4, fine_channels=16, finer_channels=16, input_size=256, dense_size=256)


def _with_batch_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial running statistics and affine parameters (as training
    would), so that folding them is really exercised; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


def _face_like(model: nn.Module) -> nn.Module:
    """Batch statistics as trained, and output layers scaled so each stage's depth spans tens of
    pixels (a randomly initialised network's is nearly flat, a fraction of a pixel,
    which would make "within 1e-3 of the depth range" a test of float rounding alone)."""
    model = _with_batch_statistics(model)
    with torch.no_grad():
        model.add_transpose_conv_3.weight.mul_(300)
        model.FNet.out.weight.mul_(300)
        model.FrNet.out_stage3.weight.mul_(300)
    return model


def _assert_close_relative(got: torch.Tensor, want: torch.Tensor, rel: float) -> None:
    scale = float(want.abs().max()) or 1.0
    err = float((got - want).abs().max())
    assert err <= rel * scale, f"max |diff| {err:.3g} > {rel} x {scale:.3g}"


@pytest.mark.parametrize("conv_type", [nn.Conv2d, nn.ConvTranspose2d])
def test_fold_batch_norm_equals_conv_then_bn(conv_type) -> None:
    torch.manual_seed(0)
    conv = conv_type(6, 5, 4, stride=2, padding=1, bias=conv_type is nn.Conv2d)
    bn = _with_batch_statistics(nn.BatchNorm2d(5))
    x = torch.randn(2, 6, 16, 16)
    with torch.no_grad():
        want = bn(conv(x))
        fold_batch_norm(conv, bn)
        got = conv(x)
    _assert_close_relative(got, want, 1e-5)


@pytest.mark.parametrize("kernel, padding, bias", [(3, 1, False), (3, 0, True), (5, 2, True), (4, 1, False)])
def test_stride_one_transposed_conv_becomes_the_same_conv(kernel, padding, bias) -> None:
    torch.manual_seed(1)
    tconv = nn.ConvTranspose2d(6, 5, kernel, padding=padding, bias=bias)
    x = torch.randn(2, 6, 15, 17)
    conv = transposed_as_conv(tconv)
    assert isinstance(conv, nn.Conv2d)
    with torch.no_grad():
        want, got = tconv(x), conv(x)
    assert got.shape == want.shape
    _assert_close_relative(got, want, 1e-6)
    # Anything else has no such plain convolution and is left alone.
    assert transposed_as_conv(nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1)) is None
    assert transposed_as_conv(nn.ConvTranspose2d(6, 4, 3, padding=1, groups=2)) is None


@pytest.mark.parametrize("config", ["cpu", TINY], ids=["cpu", "tiny-original-layout"])
def test_fused_model_gives_the_same_stages(config) -> None:
    torch.manual_seed(0)
    model = _with_batch_statistics(build_model(config))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model)
    size = model.config.input_size
    x = torch.rand(1, 3, size, size) * 2 - 1
    with torch.inference_mode():
        want = model.forward_stages(x)
        got = fused.forward_stages(x.contiguous(memory_format=torch.channels_last))
        plain = fuse_for_inference(model, channels_last=False).forward_stages(x)
    for name in ("dense", "fine", "finer"):
        _assert_close_relative(getattr(got, name), getattr(want, name), 1e-4)
        _assert_close_relative(getattr(plain, name), getattr(want, name), 1e-4)
    # No batch norm or dropout is left, nothing trains, and the model given is untouched.
    kinds = {type(m) for m in fused.modules()}
    assert not kinds & {nn.BatchNorm2d, nn.Dropout, nn.Dropout2d}
    assert not [m for m in fused.modules() if isinstance(m, nn.ConvTranspose2d) and m.stride == (1, 1)]
    assert not any(p.requires_grad for p in fused.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model.training is False and any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_threads_default_to_physical_cores() -> None:
    assert 1 <= physical_cores() <= (torch.get_num_threads() + physical_cores())


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


def _needs_onnx() -> None:
    for package in ("onnxruntime", "onnx", "onnxscript"):
        pytest.importorskip(package)


def _save(model: nn.Module, path: Path) -> Path:
    from df2net.model.weights import save_weights

    save_weights(model, model.config, path, recipe={"note": "random, for tests"})
    return path


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return _save(_with_batch_statistics(build_model(TINY)), tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def face_like_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return _save(_face_like(build_model("cpu")), tmp_path_factory.mktemp("cpu") / "face_like.safetensors")


def test_torch_and_onnxruntime_backends_match_eager_within_1e3_of_the_depth_range(
    face_like_weights: Path, sample_photo: Path, tmp_path: Path, monkeypatch
) -> None:
    from df2net import Reconstructor
    from df2net.backends import TorchBackend, onnxruntime_available
    from df2net.model.weights import load_model

    monkeypatch.setenv("DF2NET_CACHE_DIR", str(tmp_path / "cache"))
    names = ["torch"] + (["onnxruntime"] if onnxruntime_available() else [])
    reconstructor = Reconstructor(weights=face_like_weights, backend="torch")
    crops = _sample_crops(sample_photo)
    reconstructor.backend = TorchBackend(load_model(face_like_weights), optimize=False)  # the plain eager run
    want = reconstructor.reconstruct_crops(crops, "sample")[0]
    for name in names:
        got = Reconstructor(weights=face_like_weights, backend=name).reconstruct_crops(crops, "sample")[0]
        assert got.model_info["backend"] == name
        m = want.mask
        for stage in ("dense", "fine", "finer"):
            span = float(np.ptp(want.stages[stage][m]))
            assert span > 3, "the test network should give a depth range of several pixels"
            assert np.abs(got.stages[stage] - want.stages[stage])[m].max() <= 1e-3 * span, (name, stage)


def _sample_crops(sample_photo: Path):
    from df2net.face import detect_and_crop
    from df2net.io import load_image

    return detect_and_crop(load_image(sample_photo).rgb, "sample")


def test_onnxruntime_backend_exports_once_and_matches_torch(tiny_weights: Path, tmp_path: Path, monkeypatch) -> None:
    _needs_onnx()
    from df2net.backends import OnnxRuntimeBackend, TorchBackend, make_backend
    from df2net.model.weights import load_model

    monkeypatch.setenv("DF2NET_CACHE_DIR", str(tmp_path / "cache"))
    loaded = load_model(tiny_weights)
    ort_backend = OnnxRuntimeBackend(loaded)
    assert Path(ort_backend.source).parent == tmp_path / "cache" / "onnx"  # exported and cached
    assert OnnxRuntimeBackend(loaded).source == ort_backend.source  # found again, not re-exported
    eager = TorchBackend(loaded, optimize=False)
    x = torch.rand(3, 3, 256, 256) * 2 - 1  # any batch size
    want, got = eager.forward_stages(x), ort_backend.forward_stages(x)
    for name in ("dense", "fine", "finer"):
        assert getattr(got, name).shape == (3, 1, 256, 256)
        _assert_close_relative(getattr(got, name), getattr(want, name), 1e-4)
    assert make_backend(loaded, "onnxruntime") is make_backend(loaded, "onnxruntime")


def test_level_free_f_net_fuses_and_exports_to_onnx_and_matches_eager(tmp_path: Path, monkeypatch) -> None:
    _needs_onnx()
    from dataclasses import replace

    from df2net.backends import OnnxRuntimeBackend, TorchBackend
    from df2net.model.weights import load_model

    monkeypatch.setenv("DF2NET_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    weights = _save(_with_batch_statistics(build_model(replace(TINY, fine_level_ref=-0.49))), tmp_path / "level_free.safetensors")
    loaded = load_model(weights)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    x[..., :48, :] = -1.0  # a masked crop: the level is taken over the face
    want = TorchBackend(loaded, optimize=False).forward_stages(x)
    for got in (TorchBackend(loaded).forward_stages(x), OnnxRuntimeBackend(loaded).forward_stages(x)):  # fused, exported
        for name in ("dense", "fine", "finer"):
            _assert_close_relative(getattr(got, name), getattr(want, name), 1e-4)


def test_export_onnx_command_writes_a_model_that_names_its_weights(tiny_weights: Path, tmp_path: Path) -> None:
    _needs_onnx()
    import onnx

    from df2net.backends import OnnxRuntimeBackend
    from df2net.cli import main
    from df2net.model.weights import load_model

    out = tmp_path / "tiny.onnx"
    assert main(["export-onnx", "--weights", str(tiny_weights), str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    loaded = load_model(tiny_weights)
    assert meta["df2net_weights_sha256"] == loaded.metadata["sha256"]
    assert json.loads(meta["df2net_config"])["name"] == "tiny"
    backend = OnnxRuntimeBackend(loaded, onnx_model=out)
    assert backend.forward_stages(torch.zeros(1, 3, 256, 256)).finer.shape == (1, 1, 256, 256)


# --------------------------------------------------------------------------------------------
# The --backend option
# --------------------------------------------------------------------------------------------


def test_backend_option_of_reconstruct(random_weights: Path, sample_photo: Path, tmp_path: Path, capsys) -> None:
    from df2net.cli import main

    args = ["reconstruct", str(sample_photo), "-o", str(tmp_path), "--weights", str(random_weights), "-q"]
    assert main([*args, "--formats", "depth,metadata", "--backend", "torch"]) == 0
    meta = json.loads((tmp_path / "astronaut" / "face0" / "metadata.json").read_text())
    assert meta["model"]["backend"] == "torch"
    with pytest.raises(SystemExit) as info:
        main([*args, "--backend", "tensorflow"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_onnxruntime_is_a_one_line_error(
    random_weights: Path, sample_photo: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from df2net import backends
    from df2net.cli import main
    from df2net.errors import Df2netError

    def missing():
        raise Df2netError(backends._ORT_MISSING)

    monkeypatch.setattr(backends, "_import_onnxruntime", missing)
    args = ["reconstruct", str(sample_photo), "-o", str(tmp_path), "--weights", str(random_weights), "-q"]
    code = main([*args, "--backend", "onnxruntime"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "df2net: error: the onnxruntime backend needs the onnxruntime package: pip install 'df2net[onnx]'"
    ]
    assert backends.resolve_backend("auto") == "torch"  # auto falls back quietly
