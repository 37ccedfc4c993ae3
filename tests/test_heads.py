"""Tests for dsntpose.heads: shapes, known maps, bad input, torch.compile and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dsntpose import ops
from dsntpose.heads import DSNTHead, FCHead, HeadOutput, HeatmapHead

J = 3


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def peaked_logits(batch: int, h: int, w: int, points_px: list[tuple[int, int]]) -> torch.Tensor:
    """``(batch, len(points), h, w)`` logits: -20 everywhere and +20 at each (x, y) pixel."""
    logits = torch.full((batch, len(points_px), h, w), -20.0)
    for j, (x, y) in enumerate(points_px):
        logits[:, j, y, x] = 20.0
    return logits


def make_heads(in_channels: int | None, size: tuple[int, int]) -> dict[str, torch.nn.Module]:
    return {
        "dsnt": DSNTHead(in_channels, J),
        "heatmap": HeatmapHead(in_channels, J),
        "fc": FCHead(in_channels, J, size),
    }


# ---------------------------------------------------------------- shapes and types


@pytest.mark.parametrize("in_channels", [8, None])
@pytest.mark.parametrize("name", ["dsnt", "heatmap", "fc"])
def test_output_shapes(name: str, in_channels: int | None) -> None:
    head = make_heads(in_channels, (5, 7))[name]
    features = torch.randn(2, in_channels or J, 5, 7)
    out = head(features)
    assert isinstance(out, HeadOutput)
    assert out.coords.shape == (2, J, 2)
    assert out.heatmaps.shape == out.logits.shape == (2, J, 5, 7)
    assert out.confidence.shape == (2, J)
    assert out.aux == ()
    assert bool(((out.confidence >= 0) & (out.confidence <= 1)).all())
    assert all(t.dtype == torch.float32 for t in out[:4])


@pytest.mark.parametrize("name", ["dsnt", "fc"])
def test_heatmaps_are_probability_maps(name: str) -> None:
    out = make_heads(8, (6, 6))[name](torch.randn(2, 8, 6, 6))
    sums = out.heatmaps.flatten(2).sum(-1)
    torch.testing.assert_close(sums, torch.ones(2, J))
    assert bool((out.heatmaps >= 0).all())


def test_no_bias_in_joint_conv_and_identity_for_maps() -> None:
    head = DSNTHead(16, J)
    assert isinstance(head.conv, torch.nn.Conv2d)
    assert head.conv.bias is None and head.conv.weight.shape == (J, 16, 1, 1)
    assert list(DSNTHead(None, J).parameters()) == []
    # FC: one Linear(H * W, 2) shared by every joint
    fc = FCHead(None, J, (4, 5))
    assert [p.shape for p in fc.parameters()] == [torch.Size([2, 20]), torch.Size([2])]


# ---------------------------------------------------------------- numbers on known maps


def test_dsnt_head_finds_a_sharp_peak() -> None:
    points = [(0, 0), (3, 1), (6, 4)]
    logits = peaked_logits(2, 5, 7, points)
    out = DSNTHead(None, J)(logits)
    expected = ops.pixel_to_normalized(torch.tensor(points, dtype=torch.float32), (5, 7))
    torch.testing.assert_close(out.coords, expected.expand(2, J, 2), atol=1e-5, rtol=0)
    assert out.logits is logits
    torch.testing.assert_close(out.confidence, torch.ones(2, J), atol=1e-5, rtol=0)


def test_dsnt_head_temperature_and_activation_reach_ops() -> None:
    logits = torch.randn(2, J, 6, 6)
    for activation in ("softmax", "abs", "relu", "sigmoid"):
        out = DSNTHead(None, J, activation=activation, temperature=0.5)(logits)
        probs = ops.normalize_heatmaps(logits, activation, temperature=0.5)
        torch.testing.assert_close(out.heatmaps, probs)
        torch.testing.assert_close(out.coords, ops.dsnt(probs))


def test_heatmap_head_quarter_pixel_decode_and_peak_confidence() -> None:
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 2, 5] = 0.9  # peak at x=5, y=2, larger right neighbour and lower neighbour
    maps[0, 0, 2, 6] = 0.5
    maps[0, 0, 3, 5] = 0.4
    maps[0, 1, 6, 1] = 3.0  # peak above 1: confidence clamps to 1
    head = HeatmapHead(None, 2)
    out = head(maps)
    px = ops.normalized_to_pixel(out.coords, (8, 8))
    torch.testing.assert_close(px[0], torch.tensor([[5.25, 2.25], [1.0, 6.0]]))
    torch.testing.assert_close(out.confidence, torch.tensor([[0.9, 1.0]]))
    assert out.heatmaps is out.logits
    negative = head(-maps.abs() - 1)
    assert bool((negative.confidence == 0).all())


def test_fc_head_with_grid_weights_equals_dsnt() -> None:
    """A Linear whose rows are the normalised x and y grids computes the DSNT expectation."""
    h, w = 5, 6
    fc = FCHead(None, J, (h, w))
    xs = ops.normalized_linspace(w)
    ys = ops.normalized_linspace(h)
    with torch.no_grad():
        fc.fc.weight.copy_(torch.stack([xs.repeat(h), ys.repeat_interleave(w)]))
        fc.fc.bias.zero_()
    logits = torch.randn(2, J, h, w)
    torch.testing.assert_close(fc(logits).coords, DSNTHead(None, J)(logits).coords)
    # the bias shifts every joint the same way: one layer shared by all joints
    with torch.no_grad():
        fc.fc.bias.copy_(torch.tensor([0.5, -0.25]))
    shifted = fc(logits).coords - DSNTHead(None, J)(logits).coords
    torch.testing.assert_close(shifted, torch.tensor([0.5, -0.25]).expand(2, J, 2))


def test_fc_head_applies_no_tanh() -> None:
    fc = FCHead(None, 1, 3)
    with torch.no_grad():
        fc.fc.weight.zero_()
        fc.fc.bias.copy_(torch.tensor([3.0, -2.0]))
    out = fc(torch.randn(1, 1, 3, 3))
    torch.testing.assert_close(out.coords, torch.tensor([[[3.0, -2.0]]]))


# ---------------------------------------------------------------- bad input


def test_bad_inputs_name_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        DSNTHead(8, J)(torch.randn(2, 7, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        HeatmapHead(None, J)(torch.randn(2, 5, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        DSNTHead(8, J)(torch.randn(8, 4, 4))
    with pytest.raises(ValueError, match=r"built for \(4, 4\) maps"):
        FCHead(8, J, 4)(torch.randn(2, 8, 5, 4))
    with pytest.raises(ValueError, match="activation"):
        DSNTHead(8, J, activation="tanh")
    with pytest.raises(ValueError, match="activation"):
        FCHead(8, J, 4, activation="exp")
    with pytest.raises(ValueError, match="temperature"):
        DSNTHead(8, J, temperature=0)
    with pytest.raises(ValueError, match="num_joints"):
        HeatmapHead(8, 0)
    with pytest.raises(ValueError, match="heatmap_size"):
        FCHead(8, J, (0, 4))


@pytest.mark.parametrize("name", ["dsnt", "heatmap", "fc"])
def test_gradients_reach_the_features(name: str) -> None:
    features = torch.randn(2, 8, 6, 6, requires_grad=True)
    out = make_heads(8, (6, 6))[name](features)
    (out.heatmaps.square().sum() + out.coords.sum() * (name != "heatmap")).backward()
    assert features.grad is not None and bool(features.grad.isfinite().all())
    assert float(features.grad.abs().sum()) > 0


# ---------------------------------------------------------------- compile and export (slow)


@pytest.mark.slow
@pytest.mark.parametrize("in_channels", [8, None])
@pytest.mark.parametrize("name", ["dsnt", "heatmap", "fc"])
def test_torch_compile_fullgraph(name: str, in_channels: int | None) -> None:
    head = make_heads(in_channels, (7, 7))[name].eval()
    features = torch.randn(2, in_channels or J, 7, 7)
    eager = head(features)
    compiled = torch.compile(head, fullgraph=True)(features)
    for a, b in zip(eager[:4], compiled[:4]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dsnt", "heatmap", "fc"])
def test_onnx_export_matches_onnxruntime(name: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    head = make_heads(8, (7, 7))[name].eval()
    features = torch.randn(2, 8, 7, 7)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        head,
        (features,),
        str(path),
        dynamo=True,
        input_names=["features"],
        output_names=["coords", "heatmaps", "logits", "confidence"],
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = session.run(None, {"features": features.numpy()})
    eager = head(features)
    for expected, got in zip(eager[:4], results):
        np.testing.assert_allclose(got, expected.detach().numpy(), atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- coordinate read-outs


def test_dsnt_head_training_path_equals_the_composed_ops() -> None:
    """The fused softmax-DSNT node used under autograd gives the composed ops' values and
    gradients."""
    torch.manual_seed(0)
    head = DSNTHead(None, 3)
    logits = torch.randn(2, 3, 7, 9, requires_grad=True)
    out = head(logits)
    (out.coords.sum() + out.heatmaps.square().sum()).backward()
    fused_grad = logits.grad.clone()
    logits.grad = None
    probs = ops.normalize_heatmaps(logits, "softmax")
    ref = ops.dsnt(probs)
    (ref.sum() + probs.square().sum()).backward()
    torch.testing.assert_close(out.coords, ref)
    torch.testing.assert_close(fused_grad, logits.grad)


def _peak_logits(x_px: float, y_px: float, height: float, size: int = 8) -> torch.Tensor:
    """Logits 0 everywhere but a bilinear sub-pixel peak of ``height`` at (x_px, y_px)."""
    maps = torch.zeros(1, 1, size, size, dtype=torch.float64)
    x0, y0 = int(x_px), int(y_px)
    fx, fy = x_px - x0, y_px - y0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            maps[0, 0, y0 + dy, x0 + dx] = height * wx * wy
    return maps


def test_debiased_head_removes_the_pull_towards_the_centre() -> None:
    """A peak on a zero background: the plain expectation is pulled towards the centre by the
    background's softmax mass; the debiased head reads the peak's own mean."""
    plain, debiased = DSNTHead(None, 1), DSNTHead(None, 1, coords="debiased")
    logits = _peak_logits(1.0, 1.0, 4.0)  # one cell at (1, 1)
    exact = ops.pixel_to_normalized(torch.tensor([[[1.0, 1.0]]], dtype=torch.float64), (8, 8))
    with torch.no_grad():
        off = (plain(logits).coords - exact).abs().max()
        fixed = (debiased(logits).coords - exact).abs().max()
    assert off > 0.3 and fixed < 1e-9  # off by over a pixel (2 / 8 normalised units per px)
    with pytest.raises(ValueError, match="needs activation softmax"):
        DSNTHead(None, 1, activation="abs", coords="debiased")


def test_local_head_picks_one_of_two_peaks() -> None:
    """Two equal-mass peaks far apart (a left and a right wrist): plain DSNT lands between
    them, the local read-out on the stronger one."""
    probs_logits = torch.full((1, 1, 16, 16), -30.0)
    probs_logits[0, 0, 3, 2] = 0.1  # the stronger peak, at x=2, y=3
    probs_logits[0, 0, 12, 13] = 0.0
    local, plain = DSNTHead(None, 1, coords="local", local_radius=2), DSNTHead(None, 1)
    with torch.no_grad():
        between = ops.normalized_to_pixel(plain(probs_logits).coords, (16, 16))[0, 0]
        picked = ops.normalized_to_pixel(local(probs_logits).coords, (16, 16))[0, 0]
    assert 5 < between[0] < 11  # between the peaks, where neither joint is
    torch.testing.assert_close(picked, torch.tensor([2.0, 3.0]), atol=1e-4, rtol=0)


def test_rle_loss_option_trains_coordinates_and_spread() -> None:
    from dsntpose.config import LossConfig
    from dsntpose.model import CoordRegressionModel

    model = CoordRegressionModel(nn.Identity(), DSNTHead(None, 2))
    logits = torch.randn(3, 2, 8, 8, requires_grad=True)
    target = torch.zeros(3, 2, 2)
    loss = model.loss(model.head(logits), target, torch.ones(3, 2), LossConfig(coord_loss="rle"))
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"loss\.coord_loss"):
        LossConfig(coord_loss="l2")
