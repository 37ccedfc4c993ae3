"""A toy head, data set and backbone, each one file in tests/toys/ and one entry added to its
family's dict, go through the normal paths: config validation, build_model, the data splits,
training and evaluation. Nothing else in the package names them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dsntpose import families
from dsntpose.config import DataConfig, ModelConfig, RunConfig
from dsntpose.datasets import build_split
from dsntpose.evaluate import protocol_for
from dsntpose.model import build_model, model_config, model_name
from toys import toy_backbone, toy_dataset, toy_head


@pytest.fixture
def toys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(families.BACKBONES, "toy", toy_backbone.SPEC)
    monkeypatch.setitem(families.HEADS, "toy", toy_head.SPEC)
    monkeypatch.setitem(families.DATASETS, "toy", toy_dataset.SPEC)


def toy_run(out_dir: Path, **model: object) -> RunConfig:
    return RunConfig.from_dict(
        {
            "model": {"backbone": "toy", "head": "toy", "output_stride": 16, "input_size": 64,
                      "joints": "lsp", **model},
            "data": {"dataset": "toy", "batch_size": 8, "num_workers": 0, "augment": False},
            "optim": {"optimizer": "adam", "lr": 1e-3},
            "train": {"epochs": 1, "out_dir": str(out_dir), "accelerator": "cpu", "devices": 1,
                      "precision": "32-true", "log_every": 1, "vis_every": 0, "ckpt_every": 0,
                      "progress_bar": False},
        }
    )  # fmt: skip


def test_unknown_until_added(toys: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(families.BACKBONES, "toy")
    with pytest.raises(ValueError, match=r"model\.backbone: 'toy' is not allowed"):
        ModelConfig(backbone="toy")


def test_toy_backbone_strides_come_from_its_spec(toys: None) -> None:
    with pytest.raises(ValueError, match=r"model\.output_stride: 32 .*8, 16"):
        ModelConfig(backbone="toy", output_stride=32)
    cfg = model_config("toy-os8-toy", joints="lsp")
    assert (cfg.backbone, cfg.output_stride, cfg.head, cfg.input_size) == ("toy", 8, "toy", 64)
    assert model_name(cfg) == "toy-os8-toy"
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_model(ModelConfig(backbone="toy", weights="imagenet"))
    for stride in toy_backbone.STRIDES:
        net = toy_backbone.ToyBackbone(stride)
        assert net(torch.rand(1, 3, 64, 64)).shape[-1] == 64 // stride


def test_toy_head_builds_and_owns_its_flip_rule(toys: None) -> None:
    from dsntpose.heads import default_flip_mode

    model = build_model(ModelConfig(backbone="resnet18", output_stride=32, head="toy",
                                    input_size=64, joints="lsp")).eval()  # fmt: skip
    out = model(torch.rand(2, 3, 64, 64))
    assert out.coords.shape == (2, 14, 2) and out.confidence.shape == (2, 14)
    assert default_flip_mode("toy") == "coords"
    with pytest.raises(ValueError, match=r"model\.coords: 'local' needs model\.head 'dsnt'"):
        ModelConfig(head="toy", coords="local")


def test_toy_dataset_splits_and_protocol(toys: None, tmp_path: Path) -> None:
    run = toy_run(tmp_path)
    train, test = build_split(run, "train"), build_split(run, "test")
    assert (len(train), len(test)) == (16, 8)
    sample = train[3]
    assert sample["image"].shape == (3, 64, 64) and sample["mask"].sum() == 5
    assert protocol_for("toy") == families.Protocol("PCK", 0.2)
    with pytest.raises(ValueError, match=r"data\.lspet_root: needs data\.dataset 'lsp' or 'mixed'"):
        DataConfig(dataset="toy", lspet_root="x")


def test_toys_train_and_evaluate_through_the_normal_path(toys: None, tmp_path: Path) -> None:
    from dsntpose.inference import evaluate_checkpoint
    from dsntpose.training import fit

    result = fit(toy_run(tmp_path / "run"), resume="never")
    evaluation = evaluate_checkpoint(result.last, split="test", flip=True)
    assert evaluation.run.model.backbone == "toy" and evaluation.run.data.dataset == "toy"
    assert 0.0 <= evaluation.result.total <= 100.0


def write_coco(folder: Path, people: int = 3) -> Path:
    """A COCO keypoints file in LSP's 14 joints with one person per image."""
    from dsntpose.data.coco import coco_category
    from dsntpose.data.joints import LSP_JOINTS

    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for k in range(people):
        cv2.imwrite(str(folder / "images" / f"{k}.jpg"), np.full((120, 100, 3), 128, np.uint8))
        joints = np.c_[rng.uniform(20, 80, (14, 2)), np.full(14, 2)]
        images.append({"id": k, "file_name": f"{k}.jpg", "width": 100, "height": 120})
        annotations.append({
            "id": k, "image_id": k, "category_id": 1, "bbox": [15, 15, 70, 70], "area": 4900,
            "iscrowd": 0, "num_keypoints": 14, "keypoints": joints.ravel().tolist(),
        })  # fmt: skip
    path = folder / "people.json"
    category = coco_category(LSP_JOINTS)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [category]}))  # fmt: skip
    return path


def test_coco_is_a_data_set_config_can_name(tmp_path: Path) -> None:
    path = write_coco(tmp_path / "coco")
    run = RunConfig.from_dict(
        {"model": {"backbone": "resnet18", "input_size": 64, "joints": "lsp"},
         "data": {"dataset": "coco", "root": str(path), "num_workers": 0}}
    )  # fmt: skip
    assert protocol_for("coco") == families.Protocol("PCK", 0.2)
    assert len(build_split(run, "train")) == len(build_split(run, "test")) == 3
    assert build_split(run, "test")[0]["image"].shape == (3, 64, 64)
    mpii = RunConfig.from_dict(
        {**run.to_dict(), "model": {**run.to_dict()["model"], "joints": "mpii"}}
    )
    with pytest.raises(ValueError, match=r"not model\.joints 'mpii'"):
        build_split(mpii, "test")
    missing = RunConfig.from_dict(
        {**run.to_dict(), "data": {"dataset": "coco", "root": str(tmp_path)}}
    )
    with pytest.raises(FileNotFoundError, match="is not a file"):
        build_split(missing, "test")
