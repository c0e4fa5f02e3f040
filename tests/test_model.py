"""The DF2Net network and its weights: the original checkpoint's layout, stage shapes, the
safetensors round trip and the errors a user sees.

``fixtures/original_df2net_keys.json`` was written from a minimal Python 3 port of the released
``DNet.py``/``FNet.py``/``FrNet.py`` (``DNet(3, 1, 64)`` wrapped in ``DataParallel``), independent
of our classes. Its ``golden`` entry holds that port's outputs for the weights made by
:func:`fake_original_state` (seed and input recorded there), so the one original-size forward
below checks our arithmetic against the released network, not only the names.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from df2net.errors import WeightsError
from df2net.model import (
    MODEL_CONFIGS,
    DepthStages,
    LoadedModel,
    ModelConfig,
    build_model,
    convert_checkpoint,
    load_model,
    load_weights,
    save_weights,
)
from df2net.model import weights as weights_module
from df2net.model.blocks import full_precision

FIXTURE = Path(__file__).parent / "fixtures" / "original_df2net_keys.json"


def original_keys() -> dict[str, list[int]]:
    """The released checkpoint's ``{key: shape}`` (keys with the ``module.`` prefix)."""
    return json.loads(FIXTURE.read_text())["state_dict"]


def fake_original_state(keys: Mapping[str, list[int]], seed: int) -> OrderedDict[str, Tensor]:
    """Deterministic random weights shaped like the released checkpoint, with plausible BN stats."""
    gen = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, Tensor] = OrderedDict()
    for name, shape in keys.items():
        if name.endswith("num_batches_tracked"):
            tensor = torch.tensor(1000, dtype=torch.long)
        elif name.endswith("running_var"):
            tensor = 0.75 + 0.5 * torch.rand(shape, generator=gen)
        elif name.endswith("running_mean") or name.endswith("bias"):
            tensor = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # batch-norm scale
            tensor = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:  # convolution kernel
            fan = shape[1] * shape[2] * shape[3]
            tensor = torch.randn(shape, generator=gen) * (1.0 / fan) ** 0.5
        state[name] = tensor
    return state


def golden_input(seed: int, size: int) -> Tensor:
    """The deterministic RGB input of the golden check, ``(1, 3, size, size)`` in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=gen) * 2 - 1


def pooled(t: Tensor, cells: int) -> list[float]:
    """``t (1, 1, S, S)`` averaged over a ``cells x cells`` grid, as a flat list."""
    return F.adaptive_avg_pool2d(t, cells).flatten().tolist()


@pytest.fixture(scope="module")
def fixture_data() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, fixture_data: dict) -> Path:
    """A fake original checkpoint (DataParallel keys, ``{'state_dict', 'epoch'}``) converted once."""
    folder = tmp_path_factory.mktemp("original")
    old = folder / "DF2Net.pth.tar"
    golden = fixture_data["golden"]
    state = fake_original_state(fixture_data["state_dict"], golden["weights_seed"])
    torch.save({"state_dict": state, "epoch": 1}, old)
    new = folder / "original.safetensors"
    assert convert_checkpoint(old, new) == new
    old.unlink()
    return new


def small_config() -> ModelConfig:
    return MODEL_CONFIGS["cpu"]


# --- the original layout -------------------------------------------------------------------


def test_fixture_is_the_original_layout_of_our_classes(fixture_data: dict) -> None:
    keys = fixture_data["state_dict"]
    assert all(k.startswith("module.") for k in keys)
    ours = {f"module.{k}": list(v.shape) for k, v in build_model("original").state_dict().items()}
    assert ours == keys
    assert "module.layer1.layer1.weight" in keys and "module.layer2.layer2conv.weight" in keys
    assert "module.FNet.conv8.weight" in keys and "module.FrNet.out_stage3.weight" in keys


def test_converted_original_loads_strictly_and_matches_the_released_network(
    converted: Path, fixture_data: dict
) -> None:
    loaded = load_weights(converted)
    assert isinstance(loaded, LoadedModel)
    assert loaded.config == MODEL_CONFIGS["original"]
    assert loaded.path == converted
    assert not loaded.model.training
    assert loaded.metadata["recipe"]["converted_from"] == "DF2Net.pth.tar"
    golden = fixture_data["golden"]
    x = golden_input(golden["input_seed"], golden["input_size"])
    with torch.no_grad():
        stages = loaded.model.forward_stages(x)
    for name in DepthStages._fields:
        out = getattr(stages, name)
        assert out.shape == (1, 1, 512, 512)
        assert pooled(out, golden["cells"]) == pytest.approx(golden[name], abs=2e-5), name
    # The released chain: final = dense + 3 * FrNet(fine, x); F-Net's depth is a tanh output.
    assert stages.fine.abs().max() <= 1
    assert (stages.finer - stages.dense).abs().max() <= 3.0 + 1e-5


def test_convert_accepts_bare_state_dict_without_prefix_or_counters(
    tmp_path: Path, converted: Path, fixture_data: dict
) -> None:
    state = fake_original_state(fixture_data["state_dict"], fixture_data["golden"]["weights_seed"])
    bare = {k.removeprefix("module."): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    old = tmp_path / "bare.pth"
    torch.save(bare, old)
    new = convert_checkpoint(old, tmp_path / "bare.safetensors")
    a = load_weights(new).model.state_dict()
    b = load_weights(converted).model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.endswith("num_batches_tracked"))


def test_convert_rejects_other_networks_naming_the_file(tmp_path: Path) -> None:
    old = tmp_path / "other.pth.tar"
    torch.save({"state_dict": {"module.encoder.weight": torch.zeros(3, 3)}, "epoch": 1}, old)
    with pytest.raises(WeightsError, match=r"other\.pth\.tar.*missing.*unexpected"):
        convert_checkpoint(old, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


class _NotATensor:
    pass


def test_convert_loads_with_weights_only(tmp_path: Path) -> None:
    old = tmp_path / "pickled.pth.tar"
    torch.save({"state_dict": {}, "payload": _NotATensor()}, old)
    with pytest.raises(WeightsError, match=r"pickled\.pth\.tar.*weights_only"):
        convert_checkpoint(old, tmp_path / "out.safetensors")
    with pytest.raises(WeightsError, match="no such checkpoint"):
        convert_checkpoint(tmp_path / "absent.pth.tar", tmp_path / "out.safetensors")


# --- the light config and the chain ----------------------------------------------------------


def test_cpu_config_stages_at_512() -> None:
    cfg = small_config()
    model = build_model("cpu").eval()
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    x = torch.rand(1, 3, cfg.input_size, cfg.input_size) * 2 - 1
    with torch.no_grad():
        stages = model.forward_stages(x)
        final = model(x)
    assert isinstance(stages, DepthStages)
    for out in stages:
        assert out.shape == (1, 1, 512, 512)
        assert torch.isfinite(out).all()
    assert torch.equal(final, stages.finer)
    # finer_base="fine": the detail is added to F-Net's depth.
    assert (stages.finer - stages.fine).abs().max() <= cfg.finer_gain + 1e-5
    assert torch.allclose(model.to_pixels(stages.fine), stages.fine * cfg.depth_scale + cfg.depth_offset)


def test_model_trains_and_freezes_unused_released_layers() -> None:
    # A tiny config of the same layout keeps the backward pass fast.
    tiny = replace(small_config(), name="tiny", dense_channels=4, input_size=256, dense_size=256)
    model = build_model(tiny).train()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    model(x).square().mean().backward()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {f"FrNet.conv{i}_stage{s}.{k}" for i in (3, 4) for s in (2, 3) for k in ("weight", "bias")}
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)



def test_level_free_f_net_follows_d_nets_level_and_changes_nothing_else() -> None:
    # D-Net's losses leave its output level free; with fine_level_ref F-Net no longer depends on it.
    cfg = replace(small_config(), name="tiny", dense_channels=4, input_size=256, dense_size=256)
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    free = build_model(replace(cfg, fine_level_ref=-0.49)).eval()
    free.load_state_dict(plain.state_dict())  # the same tensors: the flag adds none
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    x[..., :40, :] = -1.0  # off the face (a masked crop)
    mask = (x > -1.0 + 1e-3).any(dim=1, keepdim=True).float()
    depth = -0.49 + 0.1 * torch.rand(2, 1, 256, 256)
    with torch.no_grad():
        base = free.FNet(depth, x)
        for c in (0.2, -0.35):
            moved = free.FNet(depth + c, x)
            assert torch.allclose(moved, base + c, atol=1e-5), c
            assert not torch.allclose(plain.FNet(depth + c, x) - c, plain.FNet(depth, x), atol=1e-3)  # the released F is not
        # At the reference level it is the released F-Net exactly.
        level = (depth * mask).sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True)
        at_ref = depth - level + (-0.49)
        assert torch.allclose(free.FNet(at_ref, x), plain.FNet(at_ref, x), atol=1e-6)
    assert ModelConfig.from_dict({k: v for k, v in asdict(cfg).items() if k != "fine_level_ref"}).fine_level_ref is None


def test_flip_averaged_stages_mirror_with_their_input_and_keep_the_tensors() -> None:
    # With both flags the dense and fine depths of a mirrored crop are the mirrored depths,
    # exactly up to float rounding; the plain network is not mirror-equivariant.
    cfg = replace(small_config(), name="tiny", dense_channels=4, input_size=256, dense_size=256, dense_flip_average=False)
    torch.manual_seed(1)
    plain = build_model(cfg).eval()
    both = build_model(replace(cfg, dense_flip_average=True, fine_flip_average=True)).eval()
    both.load_state_dict(plain.state_dict())  # the flags add no tensors
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        a, b = both.forward_stages(x), both.forward_stages(x.flip(-1))
        p, q = plain.forward_stages(x), plain.forward_stages(x.flip(-1))
        for stage in ("dense", "fine"):
            assert torch.allclose(getattr(b, stage), getattr(a, stage).flip(-1), atol=1e-5), stage
            assert not torch.allclose(getattr(q, stage), getattr(p, stage).flip(-1), atol=1e-3), stage
        # fine_flip_average is the mean of F-Net on the pair and on the mirrored pair.
        dense = a.dense
        expected = 0.5 * (both.FNet(dense, x) + both.FNet(dense.flip(-1), x.flip(-1)).flip(-1))
        assert torch.allclose(a.fine, expected, atol=1e-6)


def test_depth_layers_stay_float32_under_bf16_autocast() -> None:
    # Training with amp runs the network under bf16 autocast; bf16 keeps 8 bits of a depth value
    # (steps of ~0.3 px), so the layers that read or write depth run in float32.
    tiny = replace(small_config(), name="tiny", dense_channels=4, input_size=256, dense_size=256)
    torch.manual_seed(0)
    model = build_model(tiny).eval()
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        plain = model.forward_stages(x, until="fine")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model.forward_stages(x, until="fine")
    for name in ("dense", "fine"):
        out, ref = getattr(mixed, name), getattr(plain, name)
        assert out.dtype == torch.float32, name
        # Not bf16 values cast up: most pixels carry bits that bf16 does not hold ...
        assert (out != out.to(torch.bfloat16).float()).float().mean() > 0.9, name
        # ... and the whole stays close to the float32 network.
        assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3, name
    # Outside autocast full_precision is the layer itself.
    layer = torch.nn.Conv2d(2, 1, 3, padding=1)
    t = torch.rand(1, 2, 8, 8)
    assert torch.equal(full_precision(layer, t), layer(t))

def test_input_sizes_are_checked() -> None:
    model = build_model("cpu").eval()
    with pytest.raises(ValueError, match="multiples of 256"):
        model.forward_stages(torch.zeros(1, 3, 384, 384))
    with pytest.raises(ValueError, match="RGB"):
        model.forward_stages(torch.zeros(1, 1, 512, 512))


def test_configs_are_validated() -> None:
    original = MODEL_CONFIGS["original"]
    assert (original.dense_channels, original.fine_channels, original.finer_channels) == (64, 64, 64)
    assert (original.input_size, original.dense_size, original.finer_base) == (512, 512, "dense")
    assert (original.finer_gain, original.depth_scale, original.depth_offset) == (3.0, 127.5, 127.5)
    with pytest.raises(ValueError, match="dense_size"):
        ModelConfig(name="bad", dense_size=300)
    with pytest.raises(ValueError, match="fine_channels"):
        ModelConfig(name="bad", fine_channels=24)
    with pytest.raises(ValueError, match="finer_base"):
        ModelConfig(name="bad", finer_base="coarse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown ModelConfig fields: colour"):
        ModelConfig.from_dict({"name": "x", "colour": 1})
    with pytest.raises(ValueError, match="known: cpu, original"):
        build_model("huge")


# --- saving and loading ----------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("cpu").eval()
    path = tmp_path / "w.safetensors"
    assert save_weights(model, model.config, path, recipe={"steps": 3}, extra={"note": "hi"}) == path
    loaded = load_weights(path)
    meta = loaded.metadata
    assert loaded.config == model.config
    assert meta["config"]["name"] == "cpu" and meta["input_size"] == 512 and meta["depth_scale"] == 127.5
    assert meta["recipe"] == {"steps": 3} and meta["note"] == "hi"
    assert isinstance(meta["df2net_version"], str) and len(meta["sha256"]) == 64
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    # float16 storage loads into the float32 model, close to the original.
    half = load_weights(save_weights(model, model.config, tmp_path / "h.safetensors", half=True))
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * path.stat().st_size
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    with pytest.raises(ValueError, match="reserved"):
        save_weights(model, model.config, tmp_path / "x.safetensors", extra={"sha256": "0"})


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    model = build_model("cpu")
    path = save_weights(model, model.config, tmp_path / "w.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"w\.safetensors: sha256"):
        load_weights(path)


def test_config_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    model = build_model("cpu")
    wider = replace(model.config, name="wider", dense_channels=16)
    path = save_weights(model, wider, tmp_path / "w.safetensors")
    message = r"w\.safetensors: weights do not fit model config 'wider'.*of another shape"
    with pytest.raises(WeightsError, match=message):
        load_weights(path)


def test_missing_or_foreign_weights_raise_weights_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WeightsError, match=r"nope\.safetensors: no such weights file"):
        load_weights(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match=r"junk\.safetensors: not a readable"):
        load_weights(junk)
    monkeypatch.setattr(weights_module, "default_weights_path", lambda: None)
    with pytest.raises(WeightsError, match="no weights available.*--weights"):
        load_model()


def test_default_weights_are_the_first_shipped_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights_module.resources, "files", lambda package: tmp_path)
    assert weights_module.default_weights_path() is None
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "MODEL_CARD.md").write_text("card")
    assert weights_module.default_weights_path() is None
    (tmp_path / "weights" / "b.safetensors").write_bytes(b"")
    (tmp_path / "weights" / "a.safetensors").write_bytes(b"")
    assert weights_module.default_weights_path() == tmp_path / "weights" / "a.safetensors"


def test_interpolated_weights_blend_d_and_f_and_keep_the_new_fr_net(tmp_path: Path) -> None:
    from df2net.model.weights import interpolate_weights

    torch.manual_seed(0)
    old = build_model("cpu")
    torch.manual_seed(1)
    new = build_model("cpu")
    save_weights(old, old.config, tmp_path / "old.safetensors")
    save_weights(new, new.config, tmp_path / "new.safetensors", recipe={"run": "new"})
    so, sn = old.state_dict(), new.state_dict()
    ends = {}
    for alpha in (0.0, 0.5, 1.0):
        out = load_weights(interpolate_weights(tmp_path / "new.safetensors", tmp_path / "old.safetensors", alpha, tmp_path / f"m{alpha}.safetensors"))
        assert out.metadata["recipe"] == {"run": "new"} and out.metadata["interpolated"]["alpha"] == alpha
        ends[alpha] = out.model.state_dict()
    for name, value in sn.items():
        if name.startswith("FrNet.") or not torch.is_floating_point(value):
            assert all(torch.equal(ends[a][name], value) for a in ends), name
        else:
            assert torch.equal(ends[0.0][name], so[name]) and torch.equal(ends[1.0][name], value), name
            assert torch.allclose(ends[0.5][name], (so[name] + value) / 2, atol=1e-6), name
    other = build_model(replace(MODEL_CONFIGS["cpu"], dense_channels=8))
    save_weights(other, other.config, tmp_path / "other.safetensors")
    with pytest.raises(WeightsError, match="not the same network"):
        interpolate_weights(tmp_path / "new.safetensors", tmp_path / "other.safetensors", 0.5, tmp_path / "x.safetensors")


def test_transplanted_weights_take_the_named_stages_and_keep_the_base_config(tmp_path: Path) -> None:
    from df2net.model.df2net import stage_of
    from df2net.model.weights import transplant_weights

    torch.manual_seed(0)
    base = build_model("cpu")
    torch.manual_seed(1)
    trained = build_model(replace(MODEL_CONFIGS["cpu"], input_size=256))  # same tensors, run at 256²
    save_weights(base, base.config, tmp_path / "base.safetensors", extra={"gain_calibration": {"gain": 1.5}})
    save_weights(trained, trained.config, tmp_path / "run.safetensors", recipe={"run": "dense"})
    out = load_weights(transplant_weights(tmp_path / "base.safetensors", tmp_path / "run.safetensors", ("dense", "fine"), tmp_path / "c.safetensors"))
    assert out.config == base.config and out.metadata["recipe"] == {"run": "dense"}
    assert out.metadata["gain_calibration"] == {"gain": 1.5}
    assert out.metadata["transplanted"]["stages"] == ["dense", "fine"]
    sb, st, so = base.state_dict(), trained.state_dict(), out.model.state_dict()
    stages = {stage_of(k) for k in so}
    assert stages == {"dense", "fine", "finer"}
    for name, value in so.items():
        source = sb if stage_of(name) == "finer" else st
        assert torch.equal(value, source[name]), name
    with pytest.raises(ValueError, match="unknown stage"):
        transplant_weights(tmp_path / "base.safetensors", tmp_path / "run.safetensors", ("coarse",), tmp_path / "x.safetensors")
    other = build_model(replace(MODEL_CONFIGS["cpu"], dense_channels=8))
    save_weights(other, other.config, tmp_path / "other.safetensors")
    with pytest.raises(WeightsError, match="not the same network"):
        transplant_weights(tmp_path / "base.safetensors", tmp_path / "other.safetensors", ("fine",), tmp_path / "x.safetensors")
    # Run under another config of the same tensors, the gain scan stays with the file.
    from df2net.model.weights import reconfigure_weights

    moved = load_weights(reconfigure_weights(tmp_path / "c.safetensors", tmp_path / "r.safetensors", replace(base.config, fine_level_ref=-0.49)))
    assert moved.config.fine_level_ref == -0.49 and moved.metadata["gain_calibration"] == {"gain": 1.5}
    assert all(torch.equal(v, so[k]) for k, v in moved.model.state_dict().items())


def test_widened_d_net_computes_the_same_depth_and_its_new_channels_can_learn(tmp_path: Path) -> None:
    from df2net.model.widen import widen_dense, widen_weights_file

    cfg = replace(small_config(), name="tiny", dense_channels=4, input_size=256, dense_size=256)
    torch.manual_seed(2)
    narrow = build_model(cfg)
    for module in narrow.modules():  # trained-looking batch-norm statistics, so that copying them matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    wide = widen_dense(narrow, 8)
    assert wide.config.dense_channels == 8 and wide.layer4.layer4conv.out_channels == 64
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in narrow.parameters())
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    for training in (False, True):  # eval: running statistics; training: batch statistics
        narrow.train(training)
        wide.train(training)
        for module in list(narrow.modules()) + list(wide.modules()):
            if isinstance(module, torch.nn.Dropout2d):
                module.p = 0.0
        with torch.no_grad():
            assert torch.allclose(wide.dense_depth(x), narrow.dense_depth(x), atol=1e-5), training
            assert torch.equal(wide.FNet(narrow.dense_depth(x), x), narrow.FNet(narrow.dense_depth(x), x))
    # The new channels reach the output through their zero outgoing weights' gradients.
    wide.train()
    wide.dense_depth(x).square().mean().backward()
    grad = wide.dlayer1.dlayer1tconv.weight.grad  # (in, out, kh, kw): inputs [dlayer2's output, layer1's skip]
    assert grad[4:8].abs().sum() > 0 and grad[12:16].abs().sum() > 0  # the new halves' channels
    with pytest.raises(ValueError, match="even width"):
        widen_dense(narrow, 3)
    # As a file: the same network, recorded as widened, its gain calibration kept.
    save_weights(narrow.eval(), cfg, tmp_path / "narrow.safetensors", extra={"gain_calibration": {"gain": 1.5}})
    widen_weights_file(tmp_path / "narrow.safetensors", tmp_path / "wide.safetensors", 6)
    loaded = load_weights(tmp_path / "wide.safetensors")
    assert loaded.config.dense_channels == 6 and loaded.metadata["widened"]["dense_channels"] == [4, 6]
    assert loaded.metadata["gain_calibration"] == {"gain": 1.5}
    with torch.no_grad():
        assert torch.allclose(loaded.model.dense_depth(x), narrow.dense_depth(x), atol=1e-5)
