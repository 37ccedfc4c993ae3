"""The shipped model: package data, half precision, weights-only, and the numbers of its card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dsntpose import zoo

REPO = Path(__file__).resolve().parents[1]
LSP = REPO.parent / "shared" / "data" / "lsp"
CARD = REPO / "docs" / "results" / "model_card.json"


@pytest.mark.parametrize(
    ("name", "joints", "count", "presence"),
    [("lsp_efficientnet_lite0", "lsp", 14, False), ("whole_efficientnet_lite0", "mpii", 16, True)],
)
def test_shipped_file_is_small_half_precision_and_weights_only(
    name: str, joints: str, count: int, presence: bool
) -> None:
    path = zoo.pretrained_path(name)
    assert path.stat().st_size <= zoo.MAX_SHIPPED_MB * 2**20
    payload = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code
    floats = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    model, cfg, _ = zoo.load_pretrained(name)
    assert cfg.joints == joints and cfg.presence == presence and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        out = model(torch.rand(1, 3, cfg.input_size, cfg.input_size))
    assert out.coords.shape == (1, count, 2) and torch.isfinite(out.coords).all()
    assert name in zoo.model_listing()


def test_the_default_is_the_whole_photo_model() -> None:
    """The model `predict`, `eval` and ``Predictor.from_checkpoint(None)`` use: the one with a
    presence head (it says "no person found"), in MPII's 16 joints."""
    assert zoo.DEFAULT_MODEL == "whole_efficientnet_lite0"
    assert zoo.pretrained_path() == zoo.pretrained_path("whole_efficientnet_lite0")


def test_unknown_shipped_model_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="shipped: lsp_efficientnet_lite0"):
        zoo.pretrained_path("coco_hrnet")


@pytest.mark.skipif(not LSP.is_dir(), reason="../shared/data/lsp is absent")
def test_card_numbers_come_from_the_shipped_file() -> None:
    """The first 100 LSP test images scored now agree with the card's per-image predictions'
    total within sampling noise, and the stored card numbers match the file's own."""
    from dsntpose.inference import evaluate_checkpoint

    card = json.loads(CARD.read_text())
    path = zoo.pretrained_path("lsp_efficientnet_lite0")  # the card of docs/model_card.md
    stored = torch.load(path, map_location="cpu", weights_only=True)["card"]
    assert stored["lsp_test_pck20"] == card["lsp_test_pck20"]
    ev = evaluate_checkpoint(path, split="test", data={"root": str(LSP)}, limit=100, num_draw=0)
    assert len(ev.predictions) == 100
    assert abs(ev.result.total - card["lsp_test_pck20"]) < 15  # 100 of the 1000 images
