"""Tests for dsntpose.model: the model matrix, the loss per head, overfitting."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from dsntpose import ops
from dsntpose.backbones import StackedHourglass, resnet
from dsntpose.config import LossConfig, ModelConfig
from dsntpose.heads import DSNTHead, FCHead, HeadOutput, HeatmapHead
from dsntpose.model import CoordRegressionModel, build_model

HEADS = ("dsnt", "heatmap", "fc")


def loss_for(
    out: HeadOutput, target: torch.Tensor, mask: torch.Tensor, cfg: LossConfig, *, head: str
) -> torch.Tensor:
    """``CoordRegressionModel.loss`` of ``out`` for a model with the head named ``head``."""
    joints, size = out.coords.shape[1], tuple(out.heatmaps.shape[-2:])
    if head not in HEADS:
        raise ValueError(f"head: no head {head!r}")
    heads = {"dsnt": DSNTHead, "heatmap": HeatmapHead, "fc": FCHead}
    module = heads[head](None, joints, size) if head == "fc" else heads[head](None, joints)
    return CoordRegressionModel(torch.nn.Identity(), module).loss(out, target, mask, cfg)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


SIZE = 64  # input side for the matrix: small, and a multiple of 32 (and 64 for the hourglass)


def train_one_step(model: nn.Module, head: str, joints: int, size: int) -> HeadOutput:
    """One SGD step on random data; asserts finite loss and gradients and a parameter change."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, size, size)
    target = torch.rand(2, joints, 2) * 1.6 - 0.8
    mask = torch.ones(2, joints)
    mask[1, 0] = 0
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    out = model(images)
    loss = loss_for(out, target, mask, LossConfig(), head=head)
    assert loss.dim() == 0 and bool(loss.isfinite())
    opt.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and bool(g.isfinite().all()) for g in grads)
    before = model.head.conv.weight.detach().clone() if hasattr(model.head.conv, "weight") else None
    opt.step()
    if before is not None:
        assert not torch.equal(before, model.head.conv.weight)
    return out


# ---------------------------------------------------------------- the model matrix


def check_resnet_cells(depth: int, stride: int) -> None:
    """Every head on one backbone (built once: construction dominates the cost)."""
    backbone = resnet(depth, output_stride=stride)
    assert backbone.stride == stride
    hm = SIZE // stride
    heads = {
        "dsnt": DSNTHead(backbone.out_channels, 16),
        "heatmap": HeatmapHead(backbone.out_channels, 16),
        "fc": FCHead(backbone.out_channels, 16, hm),
    }
    for head in HEADS:
        out = train_one_step(CoordRegressionModel(backbone, heads[head]), head, 16, SIZE)
        assert out.coords.shape == (2, 16, 2)
        assert out.heatmaps.shape == out.logits.shape == (2, 16, hm, hm)
        assert out.confidence.shape == (2, 16)
        assert out.aux == ()


@pytest.mark.parametrize("stride", [32, 16, 8, 4])
@pytest.mark.parametrize("depth", [18, 34, 50])
def test_resnet_matrix_trains_one_step(depth: int, stride: int) -> None:
    check_resnet_cells(depth, stride)


@pytest.mark.slow
@pytest.mark.parametrize("stride", [32, 16, 8, 4])
@pytest.mark.parametrize("depth", [101, 152])
def test_deep_resnet_matrix_trains_one_step(depth: int, stride: int) -> None:
    check_resnet_cells(depth, stride)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("stacks", [1, 2])
def test_hourglass_trains_one_step_with_every_stack_supervised(stacks: int, head: str) -> None:
    cfg = ModelConfig(backbone="hourglass", num_stacks=stacks, head=head, input_size=SIZE)
    model = build_model(cfg)
    out = train_one_step(model, head, 16, SIZE)
    assert out.coords.shape == (2, 16, 2) and out.heatmaps.shape == (2, 16, 16, 16)
    assert len(out.aux) == stacks - 1
    assert all(isinstance(a, HeadOutput) and a.coords.shape == (2, 16, 2) for a in out.aux)
    model.eval()
    with torch.no_grad():
        evaluated = model(torch.rand(1, 3, SIZE, SIZE))
    assert evaluated.aux == () and evaluated.coords.shape == (1, 16, 2)


def test_hourglass_loss_is_the_sum_over_stacks() -> None:
    torch.manual_seed(0)
    model = CoordRegressionModel(StackedHourglass(3, 4, channels=16), DSNTHead(None, 4))
    out = model(torch.rand(2, 3, 64, 64))
    assert len(out.aux) == 2
    target, mask, cfg = torch.rand(2, 4, 2) - 0.5, torch.ones(2, 4), LossConfig()
    per_stack = [
        loss_for(o, target, mask, cfg, head="dsnt") for o in (*out.aux, out._replace(aux=()))
    ]
    torch.testing.assert_close(loss_for(out, target, mask, cfg, head="dsnt"), sum(per_stack))
    assert len({round(v.item(), 6) for v in per_stack}) == 3  # the stacks really differ


def test_eval_output_equals_the_last_stack_of_training_output() -> None:
    torch.manual_seed(0)
    model = CoordRegressionModel(StackedHourglass(2, 4, channels=16), HeatmapHead(None, 4))
    model.eval()  # batch norm in eval in both calls; only aux depends on the mode
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        evaluated = model(images)
        model.train()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        trained = model(images)
    torch.testing.assert_close(evaluated.heatmaps, trained.heatmaps)
    assert evaluated.aux == () and len(trained.aux) == 1


def test_build_model_wires_config_into_the_head() -> None:
    cfg = ModelConfig(
        backbone="resnet18",
        output_stride=16,
        head="fc",
        joints="lsp",
        activation="abs",
        input_size=128,
    )
    model = build_model(cfg)
    assert isinstance(model.head, FCHead)
    assert model.head.heatmap_size == (8, 8) and model.head.num_joints == 14
    assert model.head.activation == "abs" and model.head.in_channels == 512
    dsnt = build_model(ModelConfig(backbone="resnet50", head="dsnt", temperature=0.5))
    assert isinstance(dsnt.head, DSNTHead) and dsnt.head.in_channels == 2048
    assert dsnt.head.temperature == 0.5 and dsnt.backbone.stride == 8
    hg = build_model(
        ModelConfig(backbone="hourglass", num_stacks=1, head="heatmap", input_size=256)
    )
    assert isinstance(hg.head, HeatmapHead) and hg.head.in_channels is None


def test_build_model_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"model\.input_size.*multiple of 64"):
        build_model(ModelConfig(backbone="hourglass", input_size=224))
    with pytest.raises(ValueError, match=r"model\.weights"):
        build_model(ModelConfig(backbone="hourglass", input_size=256, weights="imagenet"))
    model = build_model(ModelConfig(backbone="resnet18", output_stride=32, input_size=64))
    with pytest.raises(ValueError, match=r"\(B, 3, S, S\)"):
        model(torch.rand(1, 1, 64, 64))


# ---------------------------------------------------------------- loss_for


def dsnt_output(b: int = 2, j: int = 4, size: int = 8) -> HeadOutput:
    torch.manual_seed(1)
    return DSNTHead(None, j)(torch.randn(b, j, size, size, requires_grad=True))


def test_dsnt_loss_without_regulariser_is_mean_distance_over_visible_joints() -> None:
    out = dsnt_output()
    target = torch.rand(2, 4, 2) - 0.5
    mask = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1]], dtype=torch.float32)
    cfg = LossConfig(regularizer="none")
    dist = (out.coords - target).norm(dim=-1)
    expected = (dist * mask).sum() / mask.sum()
    torch.testing.assert_close(loss_for(out, target, mask, cfg, head="dsnt"), expected)
    torch.testing.assert_close(loss_for(out, target, mask.bool(), cfg, head="dsnt"), expected)


@pytest.mark.parametrize("reg", ["var", "kl", "js"])
def test_regulariser_is_added_with_its_weight(reg: str) -> None:
    out = dsnt_output()
    target, mask = torch.rand(2, 4, 2) - 0.5, torch.ones(2, 4)
    base = loss_for(out, target, mask, LossConfig(regularizer="none"), head="dsnt")
    one = loss_for(
        out, target, mask, LossConfig(regularizer=reg, reg_weight=1.0, sigma=1.5), head="dsnt"
    )
    five = loss_for(
        out, target, mask, LossConfig(regularizer=reg, reg_weight=5.0, sigma=1.5), head="dsnt"
    )
    fns = {
        "var": lambda: ops.variance_reg_losses(out.heatmaps, 1.5),
        "kl": lambda: ops.kl_reg_losses(out.heatmaps, target, 1.5),
        "js": lambda: ops.js_reg_losses(out.heatmaps, target, 1.5),
    }
    reg_mean = fns[reg]().mean()
    assert reg_mean.item() > 0
    torch.testing.assert_close(one - base, reg_mean)
    torch.testing.assert_close(five - base, 5 * reg_mean)
    zero = loss_for(out, target, mask, LossConfig(regularizer=reg, reg_weight=0.0), head="dsnt")
    torch.testing.assert_close(zero, base)


def test_fc_loss_uses_the_regulariser_on_its_maps_when_configured() -> None:
    torch.manual_seed(0)
    out = FCHead(None, 4, 8)(torch.randn(2, 4, 8, 8))
    target, mask = torch.rand(2, 4, 2) - 0.5, torch.ones(2, 4)
    plain = loss_for(out, target, mask, LossConfig(regularizer="none"), head="fc")
    torch.testing.assert_close(plain, ops.euclidean_losses(out.coords, target).mean())
    js = loss_for(out, target, mask, LossConfig(regularizer="js"), head="fc")
    torch.testing.assert_close(js - plain, ops.js_reg_losses(out.heatmaps, target, 1.0).mean())


def test_heatmap_loss_is_zero_at_the_target_and_positive_elsewhere() -> None:
    target = torch.tensor([[[0.1, -0.3], [-0.6, 0.5]]])
    maps = ops.heatmap_targets(target, (16, 16), 1.5)
    out = HeatmapHead(None, 2)(maps)
    cfg = LossConfig(heatmap_sigma=1.5)
    mask = torch.ones(1, 2)
    assert float(loss_for(out, target, mask, cfg, head="heatmap")) == pytest.approx(0, abs=1e-12)
    shifted = loss_for(out, target + 0.2, mask, cfg, head="heatmap")
    expected = ops.heatmap_mse_losses(maps, ops.heatmap_targets(target + 0.2, (16, 16), 1.5)).mean()
    torch.testing.assert_close(shifted, expected)
    assert float(shifted) > 0


@pytest.mark.parametrize("head", HEADS)
def test_masked_joints_with_garbage_targets_give_finite_loss_and_gradients(head: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    module = {"dsnt": DSNTHead(None, 3), "heatmap": HeatmapHead(None, 3), "fc": FCHead(None, 3, 8)}
    out = module[head](logits)
    target = torch.rand(2, 3, 2) - 0.5
    target[0, 1] = float("nan")
    target[1, 2] = torch.tensor([40.0, -90.0])  # far outside the crop
    mask = torch.ones(2, 3)
    mask[0, 1] = mask[1, 2] = 0
    loss = loss_for(out, target, mask, LossConfig(regularizer="kl"), head=head)
    loss.backward()
    assert bool(loss.isfinite()) and bool(logits.grad.isfinite().all())
    # the masked joints do not matter at all
    clean = target.clone()
    clean[0, 1] = clean[1, 2] = 0.3
    again = loss_for(out, clean, mask, LossConfig(regularizer="kl"), head=head)
    torch.testing.assert_close(loss, again)


def test_all_masked_loss_is_zero() -> None:
    out = dsnt_output()
    loss = loss_for(out, torch.zeros(2, 4, 2), torch.zeros(2, 4), LossConfig(), head="dsnt")
    assert loss.item() == 0.0 and loss.requires_grad  # zero, and still part of the graph


def test_model_loss_checks_shapes() -> None:
    out = dsnt_output()
    with pytest.raises(ValueError, match=r"target must be \(B, J, 2\) = \(2, 4, 2\)"):
        loss_for(out, torch.zeros(2, 3, 2), torch.ones(2, 4), LossConfig(), head="dsnt")
    with pytest.raises(ValueError, match=r"mask must be \(B, J\) = \(2, 4\)"):
        loss_for(out, torch.zeros(2, 4, 2), torch.ones(2, 4, 1), LossConfig(), head="dsnt")


# ---------------------------------------------------------------- overfitting (wiring proof)


class TinyBackbone(nn.Module):
    """Three 3x3 convs, stride 4, 32 channels: enough to localise coloured blobs."""

    stride = 4
    out_channels = 32

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def blob_samples(
    n: int, joints: int, size: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with a Gaussian blob (sigma 2 px) per joint in its own colour channel.

    Returns ``images (n, 3, size, size)`` in [0, 1] and the joints ``(n, joints, 2)`` in pixels.
    """
    g = torch.Generator().manual_seed(seed)
    joints_px = 8 + torch.rand(n, joints, 2, generator=g) * (size - 16)
    grid = torch.arange(size, dtype=torch.float32)
    images = torch.zeros(n, 3, size, size)
    for j in range(joints):
        dx = grid.view(1, 1, -1) - joints_px[:, j, 0].view(-1, 1, 1)
        dy = grid.view(1, -1, 1) - joints_px[:, j, 1].view(-1, 1, 1)
        images[:, j] = torch.exp(-(dx**2 + dy**2) / (2 * 2.0**2))
    return images, joints_px


def overfit_error_px(
    model: nn.Module,
    images: torch.Tensor,
    joints_px: torch.Tensor,
    loss: Callable[[HeadOutput, torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    lr: float,
) -> torch.Tensor:
    """Fit ``model`` to ``images`` (every joint labelled) with ``steps`` Adam steps of ``loss``
    ``(output, target, mask)``; return its per-joint error ``(N, J)`` in input pixels after,
    in eval mode."""
    size = images.shape[-1]
    target = ops.pixel_to_normalized(joints_px, (size, size))
    mask = torch.ones(joints_px.shape[:2])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        value = loss(model(images), target, mask)
        opt.zero_grad()
        value.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred_px = ops.normalized_to_pixel(model(images).coords, (size, size))
    return (pred_px - joints_px).norm(dim=-1)


@pytest.mark.parametrize(
    ("head", "steps", "lr"), [("dsnt", 100, 3e-3), ("heatmap", 50, 3e-3), ("fc", 125, 1e-2)]
)
def test_small_model_overfits_to_sub_pixel_error(head: str, steps: int, lr: float) -> None:
    """8 samples, 2 joints, 64 px input, 16 px maps: mean error below one input pixel.

    Heatmap matching cannot beat its quarter-pixel grid (mean about 0.7 px here, 1/4 of a
    4 px cell per axis at worst); DSNT and FC reach about 0.2 px."""
    torch.manual_seed(0)
    size, joints = 64, 2
    images, joints_px = blob_samples(8, joints, size)
    maps = size // TinyBackbone.stride
    heads = {
        "dsnt": DSNTHead(32, joints),
        "heatmap": HeatmapHead(32, joints),
        "fc": FCHead(32, joints, maps),
    }
    model = CoordRegressionModel(TinyBackbone(), heads[head])
    cfg = LossConfig(regularizer="js", sigma=1.0, heatmap_sigma=1.0)
    error_px = overfit_error_px(
        model, images, joints_px, lambda o, t, m: loss_for(o, t, m, cfg, head=head), steps, lr
    )
    assert float(error_px.mean()) < 1.0, f"{head}: mean error {float(error_px.mean()):.2f} px"
    assert float(error_px.max()) < 2.5


# ---------------------------------------------------------------- checkpoints
