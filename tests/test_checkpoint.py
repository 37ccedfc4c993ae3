"""Tests for dsntpose.checkpoint: reading with its checks, atomic writes that never touch an
input, half-precision shipping, load_any, and the ONNX runner's parity with torch."""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import tiny_backbone
from dsntpose.checkpoint import (
    STATE_PREFIX,
    atomic_write,
    load_any,
    load_checkpoint,
    pretrained_path,
    save_half,
    save_model,
)
from dsntpose.config import ModelConfig
from dsntpose.model import build_model

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))


def tiny_config(**overrides: object) -> ModelConfig:
    base = {"backbone": "resnet18", "output_stride": 16, "head": "dsnt", "input_size": 64}
    return ModelConfig(**{**base, **overrides})


def lightning_style_checkpoint(model: nn.Module, config: dict) -> dict:
    """What a LightningModule holding the model as ``self.model`` saves (the parts we read)."""
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.5.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {"config": config},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2.5e-4}]}],
    }


def test_save_and_load_round_trip(tmp_path) -> None:
    cfg = tiny_config(head="fc", joints="lsp")
    model = build_model(cfg).eval()
    images = torch.rand(2, 3, 64, 64)
    path = save_model(model, tmp_path / "sub" / "model.pt", cfg)
    loaded, loaded_cfg, config = load_checkpoint(path)
    assert loaded_cfg == cfg and config == {"model": dataclasses.asdict(cfg)}
    assert not loaded.training
    with torch.no_grad():
        for a, b in zip(model(images)[:4], loaded(images)[:4]):
            torch.testing.assert_close(a, b)


def test_lightning_checkpoint_loads_and_keeps_the_run_config(tmp_path) -> None:
    cfg = tiny_config(weights="imagenet")  # must not be downloaded: the checkpoint replaces it
    model = build_model(dataclasses.replace(cfg, weights=None)).eval()
    config = {"model": dataclasses.asdict(cfg), "loss": {"regularizer": "js"}, "data": {}}
    torch.save(lightning_style_checkpoint(model, config), tmp_path / "last.ckpt")
    loaded, loaded_cfg, full = load_checkpoint(tmp_path / "last.ckpt")
    assert loaded_cfg.weights == "imagenet" and full["loss"] == {"regularizer": "js"}
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_checkpoint_for_other_joints_says_so(tmp_path) -> None:
    mpii = build_model(tiny_config(joints="mpii"))
    lsp_config = {"model": dataclasses.asdict(tiny_config(joints="lsp"))}
    torch.save(lightning_style_checkpoint(mpii, lsp_config), tmp_path / "bad.ckpt")
    with pytest.raises(
        ValueError,
        match=r"checkpoint is for 16 joints \(mpii\) but its config says 14 joints \(lsp\)",
    ):
        load_checkpoint(tmp_path / "bad.ckpt")
    path = save_model(mpii, tmp_path / "mpii.pt", tiny_config(joints="mpii"))
    with pytest.raises(
        ValueError,
        match=r"checkpoint is for 16 joints \(mpii\) but 14 joints \(lsp\) were asked for",
    ):
        load_checkpoint(path, joints="lsp")
    assert load_checkpoint(path, joints="mpii")[1].joints == "mpii"


def test_mismatched_checkpoints_name_keys_and_shapes(tmp_path) -> None:
    r18 = build_model(tiny_config())
    torch.save(
        lightning_style_checkpoint(
            r18, {"model": dataclasses.asdict(tiny_config(backbone="resnet34"))}
        ),
        tmp_path / "depth.ckpt",
    )
    with pytest.raises(
        ValueError, match=r"does not fit resnet34/dsnt: .*missing keys \(backbone\.layer1\.2"
    ):
        load_checkpoint(tmp_path / "depth.ckpt")
    torch.save(
        lightning_style_checkpoint(
            r18, {"model": dataclasses.asdict(tiny_config(backbone="resnet50"))}
        ),
        tmp_path / "wide.ckpt",
    )
    with pytest.raises(
        ValueError,
        match=r"backbone\.layer1\.0\.conv1\.weight is \(64, 64, 3, 3\) but the model has \(64, 64, 1, 1\)",
    ):
        load_checkpoint(tmp_path / "wide.ckpt")


def test_bad_checkpoint_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="state_dict"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save({"state_dict": {}, "config": {"data": {}}}, tmp_path / "nomodel.pt")
    with pytest.raises(ValueError, match="'model' section"):
        load_checkpoint(tmp_path / "nomodel.pt")
    model_section = {**dataclasses.asdict(tiny_config()), "depth": 18}
    torch.save({"state_dict": {}, "config": {"model": model_section}}, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"unknown model config fields \['depth'\]"):
        load_checkpoint(tmp_path / "unknown.pt")
    torch.save(
        {"state_dict": {"model.x": torch.zeros(1)}, "config": {"model": {"head": "gauss"}}},
        tmp_path / "h.pt",
    )
    with pytest.raises(ValueError, match=r"model\.head"):
        load_checkpoint(tmp_path / "h.pt")
    torch.save(
        {"state_dict": {"net.x": torch.zeros(1)}, "config": {"model": {}}}, tmp_path / "p.pt"
    )
    with pytest.raises(ValueError, match=r"no 'model\.\*' parameters"):
        load_checkpoint(tmp_path / "p.pt")


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path) -> None:
    # e.g. the dataclass itself instead of a dict
    torch.save({"state_dict": {}, "config": {"model": tiny_config()}}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(tmp_path / "c.pt")


# ---- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"old")

    def half_then_full_disk(tmp: Path) -> None:
        tmp.write_bytes(b"new, partly")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"could not write .*w\.pt: No space left"):
        atomic_write(path, half_then_full_disk)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]
    atomic_write(path, lambda tmp: tmp.write_bytes(b"new"))
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_a_write_onto_an_input_is_refused(tmp_path: Path) -> None:
    cfg = tiny_config()
    path = save_model(build_model(cfg).eval(), tmp_path / "w.pt", cfg)
    before = path.read_bytes()
    (tmp_path / "sub").mkdir()
    alias = tmp_path / "sub" / ".." / "w.pt"
    for target in (path, alias):
        with pytest.raises(ValueError, match=r"w\.pt is also an input of this command"):
            save_half(path, target)
        with pytest.raises(ValueError, match="also an input"):
            save_model(build_model(cfg), target, cfg, inputs=[path])
    assert path.read_bytes() == before


# ---- half-precision shipping ------------------------------------------------------------------


def test_save_half_writes_the_same_format_in_float16(tmp_path: Path) -> None:
    cfg = tiny_config(backbone="efficientnet_lite0", output_stride=32, joints="lsp")
    model = build_model(cfg).eval()
    source = save_model(model, tmp_path / "run" / "best.pt", cfg)
    shipped = save_half(source, tmp_path / "shipped.pt", extra={"score": 1.5})
    payload = torch.load(shipped, weights_only=True)
    assert payload["card"] == {"score": 1.5} and payload["config"]["model"]["joints"] == "lsp"
    assert all(k.startswith(STATE_PREFIX) for k in payload["state_dict"])
    floats = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    loaded, loaded_cfg, _ = load_checkpoint(shipped)
    assert loaded_cfg == cfg and all(p.dtype == torch.float32 for p in loaded.parameters())
    # a weight that half precision cannot hold is refused, and nothing is written
    big = build_model(cfg).eval()
    with torch.no_grad():
        big.head.conv.weight[0, 0] = 1e6
    save_model(big, tmp_path / "big.pt", cfg)
    with pytest.raises(ValueError, match=r"head\.conv\.weight hold non-finite .* not shipped"):
        save_half(tmp_path / "big.pt", tmp_path / "big_half.pt")
    assert not (tmp_path / "big_half.pt").exists()
    assert not list(tmp_path.glob(".*tmp*"))


# ---- load_any ---------------------------------------------------------------------------------


def test_load_any_opens_a_shipped_name_and_checkpoints(tmp_path: Path) -> None:
    shipped = load_any("lsp_efficientnet_lite0")
    assert shipped.kind == "torch" and shipped.source == pretrained_path("lsp_efficientnet_lite0")
    assert shipped.config.joints == "lsp" and not shipped.model.training
    cfg = tiny_config()
    path = save_model(build_model(cfg).eval(), tmp_path / "m.ckpt", cfg)
    loaded = load_any(path)
    assert loaded.kind == "torch" and loaded.config == cfg and loaded.source == path
    with pytest.raises(FileNotFoundError, match=r"nowhere\.ckpt does not exist.*shipped model"):
        load_any(tmp_path / "nowhere.ckpt")
    with pytest.raises(ValueError, match=r"junk\.pt is not a PyTorch file"):
        (tmp_path / "junk.pt").write_text("hello")
        load_any(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match=r"but 14 joints \(lsp\) were asked for"):
        load_any(path, joints="lsp")


# ---- the ONNX runner decodes and merges views with the head's own code ------------------------

ONNX_SIZE = 64
# (head, coords) of each exported tiny model; the runner must agree with torch for each, with
# and without flip, in every flip mode the head lists.
ONNX_CASES = [("dsnt", "dsnt"), ("dsnt", "debiased"), ("dsnt", "local"), ("heatmap", "dsnt")]


def onnx_pair(head: str, coords: str, presence: bool = False) -> tuple[nn.Module, ModelConfig]:
    """A fast-to-export model (two strided convs, 16 x 16 maps) with a real dsntpose head and
    the ``ModelConfig`` that names that head's settings."""
    from dsntpose.data.joints import get_joint_set
    from dsntpose.heads import DSNTHead, HeatmapHead, PresenceHead
    from dsntpose.model import CoordRegressionModel

    cfg = ModelConfig(
        backbone="resnet18", joints="mpii", input_size=ONNX_SIZE, head=head, coords=coords
    )
    torch.manual_seed(0)
    backbone = tiny_backbone()
    module = DSNTHead(16, 16, coords=coords) if head == "dsnt" else HeatmapHead(16, 16)
    torso = get_joint_set("mpii").torso  # as build_model gives a presence head
    extra = PresenceHead(16, 16, torso) if presence else None
    model = CoordRegressionModel(backbone, module, extra)
    nn.init.normal_(model.head.conv.weight, std=10.0)  # peaky maps: decodes differ visibly
    return model.eval(), cfg


@pytest.fixture(scope="module", params=ONNX_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def exported_pair(request, tmp_path_factory):
    if not HAS_ONNX:
        pytest.skip("onnx, onnxruntime and onnxscript (the [export] extra) are not installed")
    from dsntpose.export import export_onnx

    model, cfg = onnx_pair(*request.param)
    path = tmp_path_factory.mktemp("onnx") / f"{cfg.head}-{cfg.coords}.onnx"
    export_onnx(model, path, config=cfg, check=False)
    return model, cfg, load_any(path)


def test_onnx_and_torch_agree_for_every_coords_and_flip_mode(exported_pair) -> None:
    from dsntpose.data.joints import get_joint_set
    from dsntpose.inference import flip_test
    from dsntpose.predictor import Predictor

    model, cfg, loaded = exported_pair
    assert loaded.kind == "onnx" and loaded.config == cfg
    runner, joint_set = loaded.model, get_joint_set(cfg.joints)
    images = torch.rand(3, 3, ONNX_SIZE, ONNX_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, got = model(images), runner(images)
        torch.testing.assert_close(got.coords, ref.coords, atol=1e-4, rtol=0)
        assert runner.head.flip_modes == model.head.flip_modes
        for mode in model.head.flip_modes:
            want = flip_test(model, images, joint_set, mode)
            have = flip_test(runner, images, joint_set, mode)
            torch.testing.assert_close(have.coords, want.coords, atol=1e-4, rtol=0)
            torch.testing.assert_close(have.confidence, want.confidence, atol=1e-4, rtol=0)
    for flip in (False, True):  # the predictor: the head's default flip mode
        want = Predictor(model, cfg, flip=flip).forward_crops(images)
        have = Predictor(runner, cfg, flip=flip).forward_crops(images)
        torch.testing.assert_close(have[0], want[0], atol=1e-4, rtol=0)


@pytest.mark.skipif(not HAS_ONNX, reason="the [export] extra is not installed")
def test_presence_and_visibility_are_exported_and_returned(tmp_path: Path) -> None:
    from dsntpose.export import check_parity, export_onnx

    model, cfg = onnx_pair("dsnt", "dsnt", presence=True)
    cfg = dataclasses.replace(cfg, presence=True)
    path = export_onnx(model, tmp_path / "presence.onnx", config=cfg, check=False)
    loaded = load_any(path)
    images = torch.rand(2, 3, ONNX_SIZE, ONNX_SIZE)
    with torch.no_grad():
        ref, got = model(images), loaded.model(images)
    assert got.presence is not None and got.visibility is not None
    assert got.presence.shape == (2,) and got.visibility.shape == (2, 16)
    torch.testing.assert_close(got.presence, ref.presence, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.visibility, ref.visibility, atol=1e-4, rtol=0)
    report = check_parity(model, path)
    assert report.presence < 1e-3 and report.coords < 1e-4


@pytest.mark.skipif(not HAS_ONNX, reason="the [export] extra is not installed")
def test_flip_confidence_is_the_calibration_of_the_merged_prediction_on_both_engines(
    tmp_path: Path,
) -> None:
    """The flip test's joint confidence: the model's calibration applied to the merged
    visibility and maps, around the merged (local) coordinates; the ONNX file carries the
    calibration in its metadata and gives the same numbers."""
    from dsntpose import ops
    from dsntpose.data.joints import get_joint_set
    from dsntpose.export import export_onnx
    from dsntpose.heads import calibrated_confidence, joint_features
    from dsntpose.inference import flip_test

    model, cfg = onnx_pair("dsnt", "local", presence=True)
    cfg = dataclasses.replace(cfg, presence=True)
    calibration = torch.linspace(-1.0, 1.5, 12 + 2 * 16)  # the confidence's, the search's
    model.presence.calibration.copy_(calibration)
    loaded = load_any(export_onnx(model, tmp_path / "calibrated.onnx", config=cfg, check=False))
    torch.testing.assert_close(loaded.model.joint_calibration, calibration)
    joint_set = get_joint_set("mpii")
    flip_index = list(joint_set.flip_index)
    images = torch.rand(2, 3, ONNX_SIZE, ONNX_SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = flip_test(model, images, joint_set)
        have = flip_test(loaded.model, images, joint_set)
        out, out_flip = model(images), model(torch.flip(images, dims=[-1]))
    logits = 0.5 * (out.logits + torch.flip(out_flip.logits, dims=[-1])[:, flip_index])
    probs = torch.softmax(logits.flatten(2), -1).view_as(logits)
    coords = ops.local_dsnt(probs, cfg.local_radius)
    visibility = 0.5 * (out.visibility + out_flip.visibility[:, flip_index])
    # the spread: the length of the per-axis standard deviations, normalised units (2 / side
    # per cell); the scale: the torso (r_shoulder - l_hip) of the merged prediction against
    # the reference torso length 0.5 (heads.TORSO_REFERENCE)
    side = probs.shape[-1]
    cells = torch.arange(side, dtype=probs.dtype)
    mean_x = (probs.sum(-2) * cells).sum(-1)
    mean_y = (probs.sum(-1) * cells).sum(-1)
    var_x = (probs.sum(-2) * (cells - mean_x[..., None]) ** 2).sum(-1)
    var_y = (probs.sum(-1) * (cells - mean_y[..., None]) ** 2).sum(-1)
    spread = torch.sqrt(var_x + var_y) * 2 / side
    torso = torch.linalg.vector_norm(coords[:, 12] - coords[:, 3], dim=-1)
    own = [
        visibility,
        torch.logit(ops.heatmap_confidence(probs, center=coords).clamp(1e-4, 1 - 1e-4)),
        torch.log(probs.flatten(2).amax(-1)),
        torch.log(spread),
    ]
    by_hand = torch.sigmoid(
        sum(term * calibration[k] for k, term in enumerate(own))
        + torch.log(torso / 0.5)[:, None] * calibration[4]
        # the person terms: the first four averaged over the 16 joints
        + sum(term.mean(1, keepdim=True) * calibration[5 + k] for k, term in enumerate(own))
        + calibration[9:25]
    )
    torch.testing.assert_close(want.coords, coords, atol=1e-5, rtol=0)
    torch.testing.assert_close(want.confidence, by_hand, atol=1e-5, rtol=0)
    torch.testing.assert_close(have.confidence, want.confidence, atol=1e-4, rtol=0)
    assert want.features is not None and want.features.shape == (2, 16, 9)
    torch.testing.assert_close(calibrated_confidence(calibration, want.features), by_hand)
    # one view: the same formula on the model's own maps and coordinates
    single = calibrated_confidence(
        calibration,
        joint_features(
            out.visibility,
            ops.heatmap_confidence(out.heatmaps, center=out.coords),
            out.heatmaps,
            out.coords,
            joint_set.torso,
        ),
    )
    torch.testing.assert_close(out.confidence, single, atol=1e-6, rtol=0)


def test_a_checkpoint_with_the_earlier_three_weight_calibration_gives_the_same_confidence() -> None:
    """(w_visibility, w_map, bias) of the earliest layout loads as one bias per joint and no
    peak, spread or scale term: the confidences it was shipped with."""
    from dsntpose.heads import PresenceHead

    head = PresenceHead(8, 5, torso=(0, 3))
    state = head.state_dict()
    state["calibration"] = torch.tensor([0.3, 2.0, -1.5])
    head.load_state_dict(state)
    assert head.calibration.shape == (12 + 2 * 5,)
    visibility = torch.randn(2, 5)
    map_conf = torch.rand(2, 5)
    probs = torch.softmax(torch.randn(2, 5, 36), -1).view(2, 5, 6, 6)
    coords = torch.rand(2, 5, 2) * 2 - 1
    p = map_conf.clamp(1e-4, 1 - 1e-4)
    old = torch.sigmoid(0.3 * visibility + 2.0 * torch.log(p / (1 - p)) - 1.5)
    torch.testing.assert_close(head.joint_confidence(visibility, map_conf, probs, coords), old)
    with pytest.raises(ValueError, match="expected 22 weights for 5 joints"):
        from dsntpose.heads import calibrated_confidence

        calibrated_confidence(torch.zeros(4), torch.zeros(2, 5, 9))


def test_the_calibration_with_the_peak_term_loads_with_zero_spread_and_scale_weights() -> None:
    """(w_visibility, w_map, w_peak, bias_1 ... bias_J) -- the layout the model shipped with
    before the spread and scale terms -- gives the same confidences, in a state dict and
    applied directly (an ONNX file's metadata)."""
    from dsntpose.heads import PresenceHead, calibrated_confidence, joint_features

    earlier = torch.tensor([0.4, 1.5, -0.5, -1.0, -0.8, -0.6, -0.4, -0.2])
    head = PresenceHead(8, 5, torso=(0, 3))
    state = head.state_dict()
    state["calibration"] = earlier
    head.load_state_dict(state)
    torch.testing.assert_close(head.calibration[:9], torch.tensor([0.4, 1.5, -0.5] + [0.0] * 6))
    # the search keeps the earlier weights and biases: the same crops as before
    torch.testing.assert_close(head.calibration[14:], earlier)
    visibility, map_conf = torch.randn(2, 5), torch.rand(2, 5)
    probs = torch.softmax(torch.randn(2, 5, 36), -1).view(2, 5, 6, 6)
    coords = torch.rand(2, 5, 2) * 2 - 1
    p = map_conf.clamp(1e-4, 1 - 1e-4)
    peak = probs.flatten(2).amax(-1)
    want = torch.sigmoid(
        0.4 * visibility + 1.5 * torch.logit(p) - 0.5 * torch.log(peak) + earlier[3:]
    )
    torch.testing.assert_close(head.joint_confidence(visibility, map_conf, probs, coords), want)
    features = joint_features(visibility, map_conf, probs, coords, (0, 3))
    torch.testing.assert_close(calibrated_confidence(earlier, features), want)


def test_the_spread_and_scale_features_follow_the_map_and_the_person() -> None:
    """A wider blob has a larger spread feature; a person twice as large in the crop has a
    scale feature larger by log 2, the same for every joint; no torso pair gives 0."""
    from dsntpose.heads import joint_features

    side = 32
    grid = torch.arange(side, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")

    def blob(sigma: float) -> torch.Tensor:
        g = torch.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / (2 * sigma**2))
        return g / g.sum()

    probs = torch.stack([blob(1.0), blob(3.0), blob(1.0)])[None]  # (1, 3, 32, 32)
    visibility, map_conf = torch.zeros(1, 3, dtype=torch.float64), torch.full((1, 3), 0.5)
    coords = torch.tensor([[[0.0, -0.2], [0.0, 0.0], [0.0, 0.2]]], dtype=torch.float64)
    f = joint_features(visibility, map_conf, probs, coords, (0, 2))
    assert f.shape == (1, 3, 9)
    # a Gaussian's spread is sqrt(2) sigma cells, 2 / side per cell in normalised units
    want = torch.log(torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64) * 2**0.5 * 2 / side)
    torch.testing.assert_close(f[0, :, 3], want, atol=1e-3, rtol=0)
    bigger = joint_features(visibility, map_conf, probs, coords * 2, (0, 2))
    torch.testing.assert_close(
        bigger[..., 4] - f[..., 4], torch.full((1, 3), math.log(2.0), dtype=torch.float64)
    )
    # the torso 0.4 long against the reference 0.5
    torch.testing.assert_close(f[0, :, 4], torch.full((3,), math.log(0.8), dtype=torch.float64))
    assert torch.all(joint_features(visibility, map_conf, probs, coords, None)[..., 4] == 0)


def test_the_search_score_reads_the_first_three_features_under_its_own_weights() -> None:
    """The calibration's second part scores joints for the whole-photo search from visibility,
    map confidence and peak only: the spread and the person's scale do not move it, while they
    move the confidence; a lone confidence part gains a search part of its own first three
    weights and biases."""
    from dsntpose.heads import calibrated_confidence, joint_features, search_confidence

    torch.manual_seed(0)
    visibility, map_conf = torch.randn(3, 5, dtype=torch.float64), torch.rand(3, 5)
    probs = torch.softmax(torch.randn(3, 5, 36, dtype=torch.float64), -1).view(3, 5, 6, 6)
    coords = torch.zeros(3, 5, 2, dtype=torch.float64)
    coords[:, 3, 1] = torch.tensor([0.1, 0.5, 1.3], dtype=torch.float64)  # torso (0, 3)
    confidence_part = torch.tensor(
        [0.5, 1.2, 0.3, -0.7, 1.5, 0.4, -0.3, 0.2, 0.1, -1.0, -0.5, 0.0, 0.5, 1.0]
    )
    search_part = torch.tensor([0.9, 0.4, 0.1, 0.2, 0.1, 0.0, -0.1, -0.2])
    calibration = torch.cat([confidence_part, search_part])
    f = joint_features(visibility, map_conf, probs, coords, (0, 3))
    want = torch.sigmoid(f[..., :3] @ search_part[:3].double() + search_part[3:].double())
    torch.testing.assert_close(search_confidence(calibration, f), want)
    larger = joint_features(visibility, map_conf, probs, coords * 3, (0, 3))
    torch.testing.assert_close(search_confidence(calibration, larger), want)
    assert not torch.allclose(
        calibrated_confidence(calibration, larger), calibrated_confidence(calibration, f)
    )
    own_part = torch.tensor([0.5, 1.2, 0.3, -0.7, 1.5, -1.0, -0.5, 0.0, 0.5, 1.0])  # (5 + J,)
    alone = search_confidence(own_part, f)
    torch.testing.assert_close(
        alone, torch.sigmoid(f[..., :3] @ own_part[:3].double() + own_part[5:].double())
    )


def test_the_person_terms_are_the_joint_terms_averaged_over_the_person() -> None:
    """Features 5-8 are features 0-3 averaged over the sample's joints, the same for each of
    its joints and per sample: one joint read poorly lowers every joint's person terms of that
    person only."""
    from dsntpose.heads import PERSON_TERMS, joint_features

    torch.manual_seed(1)
    visibility, map_conf = torch.randn(2, 4, dtype=torch.float64), torch.rand(2, 4)
    probs = torch.softmax(torch.randn(2, 4, 25, dtype=torch.float64), -1).view(2, 4, 5, 5)
    coords = torch.rand(2, 4, 2, dtype=torch.float64) - 0.5
    f = joint_features(visibility, map_conf, probs, coords, (0, 3))
    assert PERSON_TERMS == 4 and f.shape == (2, 4, 9)
    torch.testing.assert_close(f[..., 5:], f[..., :4].mean(1, keepdim=True).expand(-1, 4, -1))
    lower = visibility.clone()
    lower[0, 2] -= 4.0
    g = joint_features(lower, map_conf, probs, coords, (0, 3))
    torch.testing.assert_close(g[0, :, 5] - f[0, :, 5], torch.full((4,), -1.0, dtype=torch.float64))
    torch.testing.assert_close(g[1], f[1])  # the other person is untouched
    torch.testing.assert_close(g[0, [0, 1, 3], :5], f[0, [0, 1, 3], :5])


def test_the_calibration_before_the_person_terms_gives_the_same_confidence_and_search() -> None:
    """(own five weights, biases, search weights, search biases) -- the layout shipped before
    the person terms -- loads with zero person weights: the same confidences and search."""
    from dsntpose.heads import (
        PresenceHead,
        calibrated_confidence,
        joint_features,
        search_confidence,
    )

    own = torch.tensor([0.4, 1.5, -0.5, -1.2, 1.7, -1.0, -0.8, -0.6, -0.4, -0.2])
    search = torch.tensor([0.1, 2.1, -0.6, -1.6, -1.5, -1.1, -1.3, -1.4])
    earlier = torch.cat([own, search])  # 8 + 2J for J = 5
    head = PresenceHead(8, 5, torso=(0, 3))
    state = head.state_dict()
    state["calibration"] = earlier
    head.load_state_dict(state)
    torch.testing.assert_close(head.calibration[:9], torch.cat([own[:5], torch.zeros(4)]))
    torch.testing.assert_close(head.calibration[9:14], own[5:])
    torch.testing.assert_close(head.calibration[14:], search)
    visibility, map_conf = torch.randn(2, 5), torch.rand(2, 5)
    probs = torch.softmax(torch.randn(2, 5, 36), -1).view(2, 5, 6, 6)
    coords = torch.rand(2, 5, 2) * 2 - 1
    f = joint_features(visibility, map_conf, probs, coords, (0, 3))
    want = torch.sigmoid(f[..., :5] @ own[:5] + own[5:])
    torch.testing.assert_close(head.joint_confidence(visibility, map_conf, probs, coords), want)
    torch.testing.assert_close(calibrated_confidence(earlier, f), want)
    torch.testing.assert_close(
        search_confidence(earlier, f), torch.sigmoid(f[..., :3] @ search[:3] + search[3:])
    )


def test_a_checkpoint_file_with_the_earlier_calibration_loads(tmp_path: Path) -> None:
    from dsntpose.checkpoint import load_checkpoint, save_model
    from dsntpose.model import build_model

    cfg = ModelConfig(
        backbone="resnet18", output_stride=32, input_size=64, joints="mpii", presence=True
    )
    model = build_model(cfg)
    path = save_model(model, tmp_path / "old.pt", cfg)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["model.presence.calibration"] = torch.tensor([0.5, 1.0, -2.0])
    torch.save(ckpt, path)
    loaded, _, _ = load_checkpoint(path)
    # the confidence's part, then the search's (the same weights, no spread, scale or person)
    want = torch.tensor([0.5, 1.0] + [0.0] * 7 + [-2.0] * 16 + [0.5, 1.0, 0.0] + [-2.0] * 16)
    torch.testing.assert_close(loaded.presence.calibration, want)
