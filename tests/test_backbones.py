"""Tests for dsntpose.backbones: torchvision parity, output strides, weights, hourglass."""

from __future__ import annotations

import json
import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from dsntpose.backbones import ResNetBackbone, StackedHourglass, resnet
from dsntpose.backbones.resnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMAGENET_URLS,
    load_resnet_weights,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures" / "torchvision_resnet"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"torchvision fixtures not found at {FIXTURES}"
)

DEPTHS = (18, 34, 50)
STRIDES = (32, 16, 8, 4)


# ---------------------------------------------------------------- helpers


def fixture_keys(depth: int) -> list[tuple[str, tuple[int, ...]]]:
    """torchvision's state_dict keys and shapes for resnet{depth}, in order (fc included)."""
    data = json.loads((FIXTURES / f"resnet{depth}.json").read_text())
    return [(name, tuple(shape)) for name, shape in data["keys"]]


def fixture_weights(depth: int) -> dict[str, torch.Tensor]:
    """The deterministic weights defined in the fixture's make.py docstring, by key index k
    over torchvision's full state_dict (fc included, num_batches_tracked left out)."""
    state = {}
    for k, (name, shape) in enumerate(fixture_keys(depth)):
        if name.endswith("num_batches_tracked"):
            continue
        n = int(np.prod(shape))
        t = np.arange(n, dtype=np.float64)
        s = np.sin(0.37 * t + k)
        if name.endswith("running_mean"):
            a = 0.1 * s
        elif name.endswith("running_var"):
            a = 1 + 0.5 * np.abs(s)
        elif len(shape) == 1 and name.endswith("weight"):
            a = 1 + 0.1 * s
        elif len(shape) == 1 and name.startswith("fc"):
            a = 0.01 * s
        elif len(shape) == 1:
            a = 0.1 * np.cos(0.37 * t + k)
        else:
            a = s / np.sqrt(n / shape[0])
        state[name] = torch.from_numpy(a.reshape(shape).astype(np.float32))
    return state


def meta_resnet(depth: int, output_stride: int = 32) -> ResNetBackbone:
    """A backbone on the meta device: shapes only, built in milliseconds."""
    with torch.device("meta"):
        return ResNetBackbone(depth, output_stride)


def with_fc(state: dict[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    """``state`` plus an ImageNet classifier, as a torchvision checkpoint has."""
    return {**state, "fc.weight": torch.zeros(1000, channels), "fc.bias": torch.zeros(1000)}


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in ResNetBackbone(18).state_dict().items()}


def assert_same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    assert own.keys() == {k for k in state if not k.startswith("fc.")}
    for key, value in own.items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------- torchvision parity


@needs_fixtures
@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_state_dict_keys_and_shapes_equal_torchvision(depth):
    expected = [(k, s) for k, s in fixture_keys(depth) if not k.startswith("fc.")]
    for stride in (32, 8):  # dilation must not change any key or shape
        got = [(k, tuple(v.shape)) for k, v in meta_resnet(depth, stride).state_dict().items()]
        assert got == expected


@needs_fixtures
@pytest.mark.parametrize("depth", [18, 50])
def test_parameter_count_equals_torchvision_without_fc(depth):
    # Trainable parameters in torchvision's feature layers: every key except the BN running
    # statistics and the classifier (11,176,512 for resnet18, 23,508,032 for resnet50).
    expected = sum(
        int(np.prod(shape))
        for name, shape in fixture_keys(depth)
        if not name.startswith("fc.")
        and not name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    got = sum(p.numel() for p in meta_resnet(depth).parameters())
    assert got == expected


@needs_fixtures
@pytest.mark.parametrize("depth", [18, 50])
def test_stage_features_match_torchvision(depth):
    ref = np.load(FIXTURES / f"resnet{depth}_parity.npz")
    model = ResNetBackbone(depth)
    # fc keys included, as a torchvision state_dict comes; the loader drops them
    load_resnet_weights(model, fixture_weights(depth), "fixture")
    model.eval()
    with torch.no_grad():
        # torchvision's model does not normalise inside, so neither do we here
        stages = model.forward_stages(torch.from_numpy(ref["x"]), normalize=False)
    for i, got in enumerate(stages, start=1):
        want = torch.from_numpy(ref[f"layer{i}"])
        assert got.shape == want.shape, f"layer{i}"
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4, msg=f"layer{i}")


# ---------------------------------------------------------------- output strides


@pytest.mark.parametrize(
    "depth", [18, 50, *(pytest.param(d, marks=pytest.mark.slow) for d in (34, 101, 152))]
)
@pytest.mark.parametrize("stride", STRIDES)
def test_224px_gives_7_14_28_56(depth, stride):
    # on the meta device: shapes are propagated without computing anything
    model = meta_resnet(depth, stride)
    out = model(torch.zeros(2, 3, 224, 224, device="meta"))
    assert out.shape == (2, model.out_channels, 224 // stride, 224 // stride)
    assert model.stride == stride
    assert model.out_channels == (512 if depth < 50 else 2048)


def _check_small_forward(depth, stride):
    torch.manual_seed(depth)
    model = resnet(depth, output_stride=stride).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))  # 32 px in -> 1, 2, 4, 8 px out
    assert out.shape == (1, model.out_channels, 32 // stride, 32 // stride)
    assert torch.isfinite(out).all() and out.abs().sum() > 0


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("stride", STRIDES)
def test_forward_sizes_small_input(depth, stride):
    _check_small_forward(depth, stride)


@pytest.mark.slow
@pytest.mark.parametrize("depth", [101, 152])
@pytest.mark.parametrize("stride", STRIDES)
def test_forward_sizes_small_input_deep(depth, stride):
    _check_small_forward(depth, stride)


@pytest.mark.parametrize(
    ("depth", "stride", "conv", "want"),
    [
        # BasicBlock, stride 8: layer3 and layer4 dilated (2, 4); a dilated stage's first
        # block uses the previous dilation in its first conv, the new one after that.
        (18, 8, "layer3.0.conv1", (1, 1, 1)),
        (18, 8, "layer3.0.conv2", (1, 2, 2)),
        (18, 8, "layer3.1.conv1", (1, 2, 2)),
        (18, 8, "layer4.0.conv1", (1, 2, 2)),
        (18, 8, "layer4.1.conv2", (1, 4, 4)),
        (18, 8, "layer2.0.conv1", (2, 1, 1)),
        # Bottleneck, stride 4: the 3x3 of each first block keeps the previous dilation.
        (50, 4, "layer2.0.conv2", (1, 1, 1)),
        (50, 4, "layer2.1.conv2", (1, 2, 2)),
        (50, 4, "layer3.0.conv2", (1, 2, 2)),
        (50, 4, "layer4.0.conv2", (1, 4, 4)),
        (50, 4, "layer4.2.conv2", (1, 8, 8)),
        (50, 4, "layer4.0.downsample.0", (1, 1, 0)),
        (50, 32, "layer4.0.conv2", (2, 1, 1)),
        (50, 32, "layer4.0.downsample.0", (2, 1, 0)),
    ],
)
def test_dilation_rule(depth, stride, conv, want):
    module = meta_resnet(depth, stride).get_submodule(conv)
    assert (module.stride[0], module.dilation[0], module.padding[0]) == want


def test_bad_depth_and_stride_name_allowed_values():
    with pytest.raises(ValueError, match="18, 34, 50, 101, 152"):
        resnet(20)
    with pytest.raises(ValueError, match="4, 8, 16, 32"):
        resnet(18, output_stride=2)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        meta_resnet(18)(torch.zeros(1, 1, 64, 64, device="meta"))


# ---------------------------------------------------------------- normalisation


def test_imagenet_normalisation_is_inside_and_not_in_state_dict():
    torch.manual_seed(0)
    model = resnet(18, output_stride=16).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        inside = model(x)
        outside = model.forward_stages((x - mean) / std, normalize=False)[-1]
        raw = model.forward_stages(x, normalize=False)[-1]
    torch.testing.assert_close(inside, outside)
    assert not torch.allclose(inside, raw, atol=1e-3)
    assert not {"mean", "std"} & model.state_dict().keys()


# ---------------------------------------------------------------- weights


def test_random_init_follows_torchvision():
    torch.manual_seed(0)
    model = resnet(18)
    conv = model.layer2[0].conv1.weight  # fan_out = 128 * 3 * 3
    assert conv.std().item() == pytest.approx((2 / (128 * 9)) ** 0.5, rel=0.05)
    assert torch.equal(model.bn1.weight, torch.ones(64))
    assert torch.equal(model.bn1.bias, torch.zeros(64))


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_local_checkpoint_loads_and_ignores_fc(tmp_path, resnet18_state, wrap):
    state = with_fc(resnet18_state, 512)
    path = tmp_path / "weights.pth"
    torch.save(state if wrap is None else {wrap: state, "epoch": 3}, path)
    model = resnet(18, output_stride=8, weights=path)
    assert_same_weights(model, state)
    if wrap is None:
        assert_same_weights(resnet(18, weights=str(path)), state)


def test_checkpoint_without_num_batches_tracked_loads(tmp_path, resnet18_state):
    state = {k: v for k, v in resnet18_state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    model = resnet(18, weights=tmp_path / "old.pth")
    torch.testing.assert_close(model.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.update({"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)}),
            "wrong shapes layer1.0.conv1.weight",
        ),
        (
            lambda s: s.update({"layer5.0.conv1.weight": torch.zeros(1)}),
            "unexpected keys layer5.0.conv1.weight",
        ),
        (lambda s: s.pop("layer3.1.bn2.running_mean"), "missing keys layer3.1.bn2.running_mean"),
    ],
)
def test_checkpoint_that_does_not_fit_names_the_key(resnet18_state, edit, message):
    state = dict(resnet18_state)
    edit(state)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        load_resnet_weights(meta_resnet(18), state, "ckpt.pth")
    assert str(info.value).startswith("ckpt.pth does not fit resnet18: ")
    assert "\n" not in str(info.value)


def test_checkpoint_of_another_depth_is_rejected(tmp_path, resnet18_state):
    torch.save(resnet18_state, tmp_path / "r18.pth")
    with pytest.raises(ValueError) as info:
        resnet(34, weights=tmp_path / "r18.pth")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'r18.pth'} does not fit resnet34: missing keys ")
    assert "layer1.2.conv1.weight" in message and "\n" not in message


def test_missing_file_and_non_state_dict(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("nope.pth")):
        resnet(18, weights=tmp_path / "nope.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="expected a state_dict"):
        resnet(18, weights=tmp_path / "list.pth")


def test_imagenet_uses_torch_hub_with_hash_check(monkeypatch, resnet18_state):
    calls = []

    def fake_download(url, **kwargs):
        calls.append((url, kwargs))
        return with_fc(resnet18_state, 512)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    model = resnet(18, output_stride=16, weights="imagenet")
    assert_same_weights(model, resnet18_state)
    (url, kwargs), *rest = calls
    assert not rest
    assert url == IMAGENET_URLS[18] == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert kwargs["check_hash"] is True and kwargs["weights_only"] is True


@pytest.mark.parametrize("depth", [18, 50])
def test_imagenet_offline_error_says_what_to_put_where(monkeypatch, tmp_path, depth):
    def offline(url, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError) as info:
        resnet(depth, weights="imagenet")
    message = str(info.value)
    file_name = IMAGENET_URLS[depth].rsplit("/", 1)[1]
    assert "\n" not in message
    assert f"download {IMAGENET_URLS[depth]} " in message
    assert message.endswith(str(tmp_path / "hub" / "checkpoints" / file_name))


# ---------------------------------------------------------------- gradients


def _assert_finite_grads(model: torch.nn.Module) -> None:
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_resnet_backward_finite_gradients():
    torch.manual_seed(0)
    model = resnet(18, output_stride=8)
    model(torch.rand(2, 3, 32, 32)).square().mean().backward()
    _assert_finite_grads(model)


# ---------------------------------------------------------------- hourglass


@pytest.mark.parametrize("num_stacks", [1, 2])
def test_hourglass_outputs_one_map_per_stack(num_stacks):
    torch.manual_seed(0)
    net = StackedHourglass(num_stacks, num_outputs=5, channels=16)
    assert net.stride == 4 and net.out_channels == 5
    outs = net(torch.rand(2, 3, 64, 128))
    assert isinstance(outs, list) and len(outs) == num_stacks
    for out in outs:
        assert out.shape == (2, 5, 16, 32)
        assert torch.isfinite(out).all()
    assert "mean" not in net.state_dict()


def test_hourglass_reinjects_predictions_and_backward_is_finite():
    torch.manual_seed(0)
    net = StackedHourglass(2, num_outputs=3, channels=16)
    first, last = net(torch.rand(2, 3, 64, 64))
    # Newell's re-injection: the second stack sees the first stack's prediction ...
    (g,) = torch.autograd.grad(last.sum(), net.predict[0].weight, retain_graph=True)
    assert g.abs().sum() > 0
    # ... while the first stack's output depends on nothing after it.
    later = [*net.hourglasses[1].parameters(), *net.predict[1].parameters()]
    assert all(g is None for g in torch.autograd.grad(first.sum(), later, allow_unused=True))
    # intermediate supervision: a loss on every stack reaches every parameter
    (first.square().mean() + last.square().mean()).backward()
    _assert_finite_grads(net)


def test_hourglass_subtracts_mpii_mean():
    net = StackedHourglass(1, 2, channels=8).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = net.predict[0](net.hourglasses[0](net.stem(x - net.mean)))
        assert torch.equal(net(x)[0], want)
    torch.testing.assert_close(
        net.mean.flatten(), torch.tensor([0.4404, 0.4440, 0.4327]), atol=1e-4, rtol=0
    )


def test_hourglass_bad_input_and_arguments():
    net = StackedHourglass(1, 2, channels=8)
    with pytest.raises(ValueError, match="multiples of 64"):
        net(torch.rand(1, 3, 96, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="num_stacks"):
        StackedHourglass(0, 16)
    with pytest.raises(ValueError, match="multiple of 4"):
        StackedHourglass(1, 16, channels=30)


@pytest.mark.parametrize("num_stacks", [8])
def test_hourglass_paper_size_on_meta(num_stacks):
    with torch.device("meta"):
        net = StackedHourglass(num_stacks, 16)
        outs = net(torch.zeros(1, 3, 256, 256))
    assert [o.shape for o in outs] == [(1, 16, 64, 64)] * num_stacks


# ---------------------------------------------------------------- compile / export


@pytest.mark.slow
def test_backbones_compile_and_export_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64)
    for name, model in [
        ("resnet", resnet(18, output_stride=8).eval()),
        ("hourglass", StackedHourglass(2, 3, channels=16).eval()),
    ]:
        with torch.no_grad():
            want = model(x)
            want = want if isinstance(want, list) else [want]
            got = torch.compile(model, fullgraph=True)(x)
            got = got if isinstance(got, list) else [got]
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        path = tmp_path / f"{name}.onnx"
        torch.onnx.export(model, (x,), path, dynamo=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        assert len(outs) == len(want)
        for a, b in zip(outs, want):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4)
