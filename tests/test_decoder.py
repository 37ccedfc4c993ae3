"""The light upsampling decoder (``model.upsample``): maps at twice (two stages: four times)
the backbone's resolution.

Proven here: a fresh decoder is exactly the bilinear upsampling of the head's logits (so a
fine-tune starts from the trained maps), with one stage or two; upsampling keeps the coordinate
frame (rendered blobs at sub-cell positions); the refining branches learn from the finer
features (a blob model reaches sub-pixel error on 2x and 4x maps); the backbones' finer levels;
config, names, checkpoints, fine-tuning starts (a one-stage model into two) and ONNX export.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsntpose import ops
from dsntpose.config import LossConfig, ModelConfig
from dsntpose.decoder import UpsampleDecoder
from dsntpose.heads import DSNTHead, PresenceHead
from dsntpose.model import CoordRegressionModel, build_model, model_config, model_name

LITE = ModelConfig(backbone="efficientnet_lite0", output_stride=16, input_size=64, upsample=True)


def blob_logits(centre: tuple[float, float], size: int, sigma: float) -> Tensor:
    """``(1, 1, size, size)`` log-Gaussian logits around ``centre`` (normalised x, y)."""
    cells = (torch.arange(size) * 2 + 1) / size - 1  # cell centres, the DSNT frame
    yy, xx = torch.meshgrid(cells, cells, indexing="ij")
    return (-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))[None, None]


def test_a_fresh_decoder_is_the_bilinear_upsampling_of_the_logits() -> None:
    torch.manual_seed(0)
    model = build_model(LITE).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        coarse = model.head.logits(model.backbone(x))
    assert tuple(out.heatmaps.shape) == (2, 16, 8, 8) and LITE.heatmap_size == 8
    expected = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(out.logits, expected, atol=1e-6)


@pytest.mark.parametrize("centre", [(0.3, -0.55), (0.05, 0.6), (-0.42, 0.17)])
def test_upsampling_keeps_the_coordinate_frame(centre: tuple[float, float]) -> None:
    """A blob rendered at a sub-cell place on 12 cells reads at the same place on the 24 the
    fresh decoder gives: within a twentieth of a coarse cell (a shift of the frame by half a
    cell, as with ``align_corners=True``, would move it by 0.04 normalised units here)."""
    decoder = UpsampleDecoder(8, 4, 1).eval()
    logits = blob_logits(centre, 12, sigma=0.12)
    with torch.no_grad():
        fine = decoder(logits, torch.rand(1, 8, 12, 12), torch.rand(1, 4, 24, 24))
    assert tuple(fine.shape) == (1, 1, 24, 24)
    coords = ops.dsnt(ops.normalize_heatmaps(fine, "softmax"))[0, 0]
    truth = torch.tensor(centre)
    assert torch.allclose(coords, truth, atol=0.1 / 12), (coords, truth)
    shifted = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=True)
    wrong = ops.dsnt(ops.normalize_heatmaps(shifted, "softmax"))[0, 0]
    assert not torch.allclose(wrong, truth, atol=0.1 / 12)  # the check can fail


class SkipBackbone(nn.Module):
    """Stride 2 (4 channels), stride 4 (8 channels), then stride 8 (16 channels), with
    ``forward_skip`` giving the stride-4 and stride-2 levels."""

    stride, out_channels, pyramid_channels = 8, 16, (8, 4)

    def __init__(self) -> None:
        super().__init__()
        self.finest = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU())
        self.fine = nn.Sequential(nn.Conv2d(4, 8, 3, 2, 1), nn.ReLU())
        self.deep = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())

    def forward_skip(self, x: Tensor, levels: int = 1) -> tuple[Tensor, ...]:
        finest = self.finest(x)
        skip = self.fine(finest)
        return (self.deep(skip), skip, finest)[: 1 + levels]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_skip(x)[0]


@pytest.mark.parametrize("skips", [(8,), (8, 4)])
def test_the_refining_branch_learns_from_the_finer_features(skips: tuple[int, ...]) -> None:
    """Blobs (one per joint, in its own channel) in 64 px images: 8 px coarse maps, 16 px
    after one stage (32 px after two); 150 Adam steps reach a mean error under one input
    pixel, and every stage's output layer has moved off zero (trained, not bypassed)."""
    from test_model import blob_samples, overfit_error_px

    torch.manual_seed(0)
    size, joints = 64, 2
    images, joints_px = blob_samples(8, joints, size)
    decoder = UpsampleDecoder(16, skips, joints, width=16)
    assert decoder.stages == len(skips)
    model = CoordRegressionModel(SkipBackbone(), DSNTHead(16, joints), decoder=decoder)
    assert tuple(model(images).heatmaps.shape[-2:]) == (8 << len(skips),) * 2
    cfg = LossConfig(regularizer="js", sigma=1.0)
    error_px = overfit_error_px(
        model, images, joints_px, lambda o, t, m: model.loss(o, t, m, cfg), 150, 3e-3
    )
    assert float(error_px.mean()) < 1.0, f"mean error {float(error_px.mean()):.2f} px"
    stage: UpsampleDecoder | None = decoder
    while stage is not None:
        assert float(stage.out.weight.detach().abs().max()) > 1e-3
        stage = stage.finer


def test_a_fresh_two_stage_decoder_is_the_bilinear_upsampling_twice() -> None:
    """Lite0 at stride 16 with two stages: 64 px in, 4 px features, 16 px maps, exactly the
    logits upsampled 2x twice; the backbone's finer levels are its stride-8 and stride-4
    blocks."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**vars(LITE), "upsample": 2})
    model = build_model(cfg).eval()
    assert model.backbone.pyramid_channels == (40, 24) and cfg.heatmap_size == 16
    x = torch.rand(2, 3, 64, 64)
    features, skip, skip2 = model.backbone_features(x)
    assert [tuple(t.shape[-3:]) for t in (features, skip, skip2)] == [
        (1280, 4, 4), (40, 8, 8), (24, 16, 16)
    ]  # fmt: skip
    with torch.no_grad():
        out = model(x)
        coarse = model.head.logits(model.backbone(x))
    twice = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
    twice = F.interpolate(twice, scale_factor=2, mode="bilinear", align_corners=False)
    assert tuple(out.heatmaps.shape) == (2, 16, 16, 16)
    assert torch.allclose(out.logits, twice, atol=1e-6)
    with pytest.raises(ValueError, match="2 stage"):
        model.decoder(coarse, features, skip)


def test_backbones_name_their_finer_levels() -> None:
    """Each backbone's finer levels (half, then a quarter of its output stride, down to 4):
    what a one- or two-stage decoder may read; asking for more is a one-line error."""
    from dsntpose.backbones.efficientnet import EfficientNetLite
    from dsntpose.backbones.resnet import ResNetBackbone

    x = torch.rand(1, 3, 64, 64)
    for net, pyramid in (
        (ResNetBackbone(18, 32), (256, 128)),
        (ResNetBackbone(18, 16), (128, 64)),
        (ResNetBackbone(18, 8), (64,)),
        (ResNetBackbone(18, 4), ()),
        (EfficientNetLite(0, 32), (112, 40)),
        (EfficientNetLite(0, 16), (40, 24)),
        (EfficientNetLite(0, 8), (24,)),
    ):
        assert net.pyramid_channels == pyramid, net
        if pyramid:
            got = net.forward_skip(x, len(pyramid))
            for level, (t, channels) in enumerate(zip(got[1:], pyramid), 1):
                assert t.shape[1] == channels
                assert t.shape[-1] == 64 * 2**level // net.stride
        with pytest.raises(ValueError, match="finer"):
            net.forward_skip(x, len(pyramid) + 1)


def test_presence_pools_finer_maps_as_their_mass_on_the_features_cells() -> None:
    torch.manual_seed(0)
    head = PresenceHead(6, 3)
    features = torch.rand(2, 6, 4, 4)
    fine = torch.rand(2, 3, 8, 8).flatten(2).softmax(-1).view(2, 3, 8, 8)
    coarse = fine.view(2, 3, 4, 2, 4, 2).sum(dim=(3, 5))
    presence_fine, visibility_fine = head(features, fine)
    presence, visibility = head(features, coarse)
    assert torch.allclose(visibility_fine, visibility, atol=1e-6)
    assert torch.equal(presence_fine, presence)
    with pytest.raises(ValueError, match="do not fit features"):
        head(features, torch.rand(2, 3, 6, 6))


def test_config_names_and_errors() -> None:
    assert LITE.stride == 8 and LITE.heatmap_size == 8
    assert model_name(LITE) == "efficientnet_lite0-os16-up"
    assert model_config("efficientnet_lite0-os16-up", input_size=64) == LITE
    assert not model_config("efficientnet_lite0-os16").upsample
    two = model_config("efficientnet_lite0-os16-up2", input_size=192)
    assert two.upsample == 2 and two.stride == 4 and two.heatmap_size == 48
    assert model_name(two) == "efficientnet_lite0-os16-up2"
    with pytest.raises(ValueError, match=r"model\.upsample: 2 stages .* got 8"):
        ModelConfig(backbone="efficientnet_lite0", output_stride=8, upsample=2)
    with pytest.raises(ValueError, match=r"model\.upsample: .* got 3"):
        ModelConfig(backbone="efficientnet_lite0", output_stride=16, upsample=3)
    built = build_model(ModelConfig(backbone="resnet18", output_stride=32, upsample=True))
    assert built.decoder.skip_channels == 256  # layer3, stride 16
    for bad in (
        {"backbone": "resnet18", "output_stride": 4},
        {"backbone": "resnet18", "head": "heatmap"},
        {"backbone": "hourglass"},
    ):
        with pytest.raises(ValueError, match=r"model\.upsample"):
            ModelConfig(upsample=True, **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="do not fit"):
        UpsampleDecoder(8, 4, 1)(
            torch.rand(1, 1, 4, 4), torch.rand(1, 8, 4, 4), torch.rand(1, 4, 6, 6)
        )


def test_checkpoint_round_trip_and_a_fine_tune_start_from_a_model_without_one(
    tmp_path: Path,
) -> None:
    """A model with the decoder saves and loads whole; fine-tuning it from a model without
    one starts from that model's maps, upsampled (the decoder's fresh start)."""
    from dsntpose.checkpoint import load_checkpoint, save_model
    from dsntpose.training.module import load_initial_weights

    torch.manual_seed(0)
    plain_cfg = ModelConfig(**{**vars(LITE), "upsample": False, "presence": True})
    plain = build_model(plain_cfg).eval()
    nn.init.normal_(plain.head.conv.weight, std=0.05)  # peaky maps
    save_model(plain, tmp_path / "plain.pt", plain_cfg)
    up_cfg = ModelConfig(**{**vars(plain_cfg), "upsample": True})
    up = build_model(up_cfg)
    load_initial_weights(up, up_cfg, tmp_path / "plain.pt")
    up.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x), up(x)
    expected = F.interpolate(a.logits, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(b.logits, expected, atol=1e-5)
    assert torch.allclose(b.presence, a.presence, atol=1e-5)
    assert torch.allclose(b.coords, a.coords, atol=0.25 * 2 / 4)  # within a quarter coarse cell
    nn.init.normal_(up.decoder.out.weight, std=0.1)
    save_model(up, tmp_path / "up.pt", up_cfg)
    again, cfg, _ = load_checkpoint(tmp_path / "up.pt")
    assert cfg.upsample and again.has_decoder
    with torch.no_grad():
        assert torch.allclose(again(x).logits, up(x).logits, atol=1e-6)
    # a one-stage model starts a two-stage one: its trained stage kept, the second fresh
    two_cfg = ModelConfig(**{**vars(up_cfg), "upsample": 2})
    two = build_model(two_cfg)
    load_initial_weights(two, two_cfg, tmp_path / "up.pt")
    two.eval()
    with torch.no_grad():
        c, d = up(x), two(x)
    expected = F.interpolate(c.logits, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(d.logits, expected, atol=1e-5)
    assert torch.allclose(d.coords, c.coords, atol=0.25 * 2 / 8)  # within a quarter cell


@pytest.mark.parametrize("stages", [1, 2])
def test_onnx_export_with_the_decoder_matches_torch(tmp_path: Path, stages: int) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from dsntpose.checkpoint import OnnxModel
    from dsntpose.export import export_onnx

    torch.manual_seed(0)
    cfg = ModelConfig(**{**vars(LITE), "upsample": stages})
    model = build_model(cfg).eval()
    stage = model.decoder
    while stage is not None:
        nn.init.normal_(stage.out.weight, std=0.1)
        stage = stage.finer
    path = export_onnx(model, tmp_path / "up.onnx", config=cfg)  # checks parity itself
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    got = OnnxModel(path)(x)
    assert tuple(got.heatmaps.shape) == (3, 16, 4 << stages, 4 << stages)
    assert torch.allclose(got.coords, expected.coords, atol=1e-4)
