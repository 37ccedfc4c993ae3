"""Run configs: defaults, validation messages, dict round trips, and every YAML in configs/."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from dsntpose.config import (
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    load_config,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_defaults_are_the_paper_recipe():
    run = RunConfig()
    assert run.optim.optimizer == "rmsprop"
    assert run.optim.lr == pytest.approx(2.5e-4)
    assert run.optim.milestones == [60, 90]
    assert run.optim.gamma == pytest.approx(0.1)
    assert run.train.epochs == 120
    assert (run.loss.regularizer, run.loss.reg_weight, run.loss.sigma) == ("js", 1.0, 1.0)


def test_dict_round_trip_is_plain_and_exact():
    run = RunConfig.from_dict(
        {"model": {"backbone": "resnet18", "joints": "lsp"}, "data": {"dataset": "lsp"}}
    )
    values = run.to_dict()
    assert list(values) == ["model", "loss", "data", "optim", "train"]
    # plain YAML types only (checkpoints and config.yaml hold this)
    assert yaml.safe_load(yaml.safe_dump(values)) == values
    assert RunConfig.from_dict(values) == run


@pytest.mark.parametrize(
    ("values", "key", "allowed"),
    [
        ({"model": {"backbone": "vgg16"}}, "model.backbone", "'resnet18'"),
        ({"model": {"head": "argmax"}}, "model.head", "'dsnt', 'heatmap', 'fc'"),
        ({"model": {"output_stride": 2}}, "model.output_stride", "4, 8, 16, 32"),
        ({"loss": {"regularizer": "l2"}}, "loss.regularizer", "'none', 'var', 'kl', 'js'"),
        ({"data": {"dataset": "crowdpose"}}, "data.dataset", "'synthetic', 'lsp', 'mpii'"),
        ({"optim": {"optimizer": "lbfgs"}}, "optim.optimizer", "'rmsprop', 'adam', 'sgd'"),
        ({"train": {"precision": "64-true"}}, "train.precision", "'32-true', 'bf16-mixed'"),
        ({"train": {"accelerator": "tpu"}}, "train.accelerator", "'cpu', 'gpu'"),
        ({"train": {"strategy": "fsdp"}}, "train.strategy", "'ddp'"),
        ({"train": {"devices": 0}}, "train.devices", "-1 (all) or 'auto'"),
        (
            {"model": {"joints": "mpii"}, "data": {"dataset": "lsp"}},
            "model.joints",
            "'lsp'",
        ),
    ],
)
def test_bad_choice_names_key_and_allowed_values(values, key, allowed):
    with pytest.raises(ValueError) as err:
        RunConfig.from_dict(values)
    message = str(err.value)
    assert message.startswith(key), message
    assert allowed in message


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        (DataConfig, {"batch_size": 0}, "data.batch_size"),
        (DataConfig, {"flip_prob": 1.5}, "data.flip_prob"),
        (DataConfig, {"color_low": 1.6}, "data.color_low"),
        (DataConfig, {"train_subset": 0}, "data.train_subset"),
        (OptimConfig, {"lr": 0.0}, "optim.lr"),
        (OptimConfig, {"milestones": [90, 60]}, "optim.milestones"),
        (TrainConfig, {"epochs": 0}, "train.epochs"),
        (TrainConfig, {"ckpt_every": -1}, "train.ckpt_every"),
        (ModelConfig, {"input_size": 100}, "model.input_size"),
        (LossConfig, {"reg_weight": -1.0}, "loss.reg_weight"),
    ],
)
def test_bad_number_names_key(section, values, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        section(**values)


def test_unknown_keys_and_sections_are_named():
    with pytest.raises(ValueError, match=r"optim\.learning_rate: unknown key; keys: optimizer, lr"):
        RunConfig.from_dict({"optim": {"learning_rate": 1e-3}})
    with pytest.raises(ValueError, match=r"unknown section 'trainer'; sections: model, loss"):
        RunConfig.from_dict({"trainer": {}})
    with pytest.raises(ValueError, match="expected a mapping"):
        RunConfig.from_dict({"model": "resnet18"})


def test_devices_accepts_counts_and_auto():
    assert TrainConfig(devices="2").devices == 2
    assert TrainConfig(devices=-1).devices == -1
    assert TrainConfig(devices="auto").devices == "auto"


def test_hourglass_needs_multiple_of_64():
    with pytest.raises(
        ValueError, match=r"model\.input_size: the hourglass needs a multiple of 64"
    ):
        RunConfig.from_dict({"model": {"backbone": "hourglass", "input_size": 224}})


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  backbone: alexnet\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: model\.backbone: 'alexnet' is not allowed"):
        load_config(bad)


def test_configs_folder_holds_the_paper_recipes():
    names = {p.stem for p in CONFIGS}
    for wanted in (
        "mpii_resnet34_s8_dsnt_js",
        "mpii_resnet50_s8_dsnt_js",
        "mpii_hourglass8_heatmap",
        "mpii_hourglass8_dsnt_js",
        "lsp_resnet18_s8_dsnt_js",
        "synthetic_smoke",
    ):
        assert wanted in names
    paper = load_config(REPO / "configs" / "mpii_resnet50_s8_dsnt_js.yaml")
    assert (paper.model.input_size, paper.model.heatmap_size) == (224, 28)
    assert (paper.optim.lr, paper.optim.milestones, paper.train.epochs) == (2.5e-4, [60, 90], 120)
    assert paper.data.batch_size == 32
    hourglass = load_config(REPO / "configs" / "mpii_hourglass8_heatmap.yaml")
    assert (hourglass.model.num_stacks, hourglass.model.input_size) == (8, 256)
    assert hourglass.data.batch_size == 6


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_builds_its_model(path):
    from dsntpose.model import build_model

    run = load_config(path)
    assert run.train.out_dir, path
    # A tiny input and no weight download: the point is that the recipe builds and runs.
    small = 64 if run.model.backbone == "hourglass" else 32 * max(1, run.model.output_stride // 8)
    cfg = dataclasses.replace(run.model, weights=None, input_size=small)
    model = build_model(cfg).eval()
    if cfg.backbone == "hourglass":
        # The full 8-stack network builds; its first CPU forward takes seconds, so the forward
        # pass checks one stack of the same recipe.
        assert len(model.backbone.hourglasses) == run.model.num_stacks
        model = build_model(dataclasses.replace(cfg, num_stacks=1)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, small, small))
    assert out.coords.shape == (1, run.model.num_joints, 2)
    assert torch.isfinite(out.coords).all()
