"""The pretrained recipe's parts: LSP + LSPET training sets, the held-out validation split,
the cosine schedule and per-group learning rates."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dsntpose.config import OptimConfig, RunConfig
from dsntpose.data.common import PoseConcat
from dsntpose.data.synthetic import Synthetic
from dsntpose.datasets import build_datasets, build_test_set, holdout_picks
from dsntpose.training import lr_factor

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_lspet = pytest.mark.skipif(
    not (SHARED / "lspet").is_dir() or not (SHARED / "lsp").is_dir(),
    reason="../shared/data/lsp or lspet is absent",
)


def test_holdout_is_fixed_disjoint_and_complete() -> None:
    train, held = holdout_picks([1000, 9000], 500)
    assert len(held) == 500 and len(train) == 9500
    assert not set(train) & set(held)
    assert sorted(train + held) == [(p, i) for p, n in enumerate([1000, 9000]) for i in range(n)]
    assert holdout_picks([1000, 9000], 500) == (train, held)  # same draw every time
    assert {p for p, _ in held} == {0, 1}  # drawn from both parts
    with pytest.raises(ValueError, match=r"data.val_holdout: 10 held out of 10"):
        holdout_picks([4, 6], 10)


def test_synthetic_holdout_split_and_test_set() -> None:
    run = RunConfig.from_dict(
        {
            "model": {"backbone": "resnet18", "joints": "lsp", "input_size": 64},
            "data": {"synthetic_train": 40, "synthetic_val": 8, "val_holdout": 10},
        }
    )
    train, val = build_datasets(run)
    assert (len(train), len(val)) == (30, 10)  # type: ignore[arg-type]
    assert len(build_test_set(run)) == 8  # type: ignore[arg-type]
    # the held-out samples are unaugmented copies of training images, and leave training
    _, held = holdout_picks([40], 10)
    plain = Synthetic(40, size=64, joints="lsp", seed=0)
    first = val[0]
    torch.testing.assert_close(first["image"], plain[held[0][1]]["image"])
    assert first["index"] == 0


def test_concat_passes_the_epoch_and_renumbers() -> None:
    a = Synthetic(4, size=32, joints="lsp", augment=True, seed=0)
    b = Synthetic(3, size=32, joints="lsp", augment=True, seed=1)
    both = PoseConcat([a, b])
    assert len(both) == 7 and both[5]["index"] == 5
    before = both[5]["image"].clone()
    both.set_epoch(3)
    assert a.epoch == b.epoch == 3
    assert not torch.equal(before, both[5]["image"])
    with pytest.raises(ValueError, match="parts differ"):
        PoseConcat([a, Synthetic(2, size=48, joints="lsp")])


def test_cosine_schedule_with_warmup() -> None:
    o = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.01)
    values = [lr_factor(s, optim=o, total_steps=110) for s in range(111)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[60] == pytest.approx(0.505)  # half way: the mean of 1 and 0.01
    assert values[110] == pytest.approx(0.01)
    assert all(x >= y for x, y in itertools.pairwise(values[10:]))
    with pytest.raises(ValueError, match=r"optim\.warmup_steps"):
        OptimConfig(warmup_steps=5)  # the step schedule counts epochs


def test_backbone_learning_rate_group() -> None:
    from dsntpose.training import PoseModule

    run = RunConfig.from_dict(
        {
            "model": {"backbone": "resnet18", "output_stride": 32, "input_size": 64,
                      "presence": True},
            "optim": {"optimizer": "adam", "lr": 1e-3, "backbone_lr_ratio": 0.1},
        }
    )  # fmt: skip
    module = PoseModule(run.to_dict())
    optimizer = module.configure_optimizers()["optimizer"]
    lrs = [group["lr"] for group in optimizer.param_groups]
    assert lrs == [pytest.approx(1e-3), pytest.approx(1e-4)]
    model = module.model
    # every parameter trains, the presence and visibility heads' with the head's rate
    head = {id(p) for p in [*model.head.parameters(), *model.presence.parameters()]}
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == head
    backbone = {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == backbone
    assert len(head) + len(backbone) == len(list(model.parameters()))


@needs_lspet
def test_lsp_plus_lspet_with_holdout() -> None:
    run = RunConfig.from_dict(
        {
            "model": {"backbone": "efficientnet_lite0", "output_stride": 32, "joints": "lsp",
                      "input_size": 64},
            "data": {"dataset": "lsp", "root": str(SHARED / "lsp"),
                     "lspet_root": str(SHARED / "lspet"), "val_holdout": 500},
        }
    )  # fmt: skip
    train, val = build_datasets(run)
    assert (len(train), len(val)) == (9500, 500)  # type: ignore[arg-type]
    test = build_test_set(run)
    assert len(test) == 1000 and test.rows[0] == 1000  # type: ignore[attr-defined]
    sample = val[0]
    assert sample["image"].shape == (3, 64, 64)
    assert np.isfinite(sample["norm_size"]) or math.isnan(sample["norm_size"])
    with pytest.raises(FileNotFoundError, match=r"data\.lspet_root .* has no joints\.mat"):
        build_datasets(
            RunConfig.from_dict({**run.to_dict(), "data": {**run.to_dict()["data"],
                                                           "lspet_root": str(SHARED)}})
        )  # fmt: skip


def test_resume_upgrades_an_older_optimizer_layout() -> None:
    """A checkpoint written when the head group held the head's parameters alone (the presence
    and visibility heads left out) resumes: the backbone's Adam moments land on the backbone's
    parameters, the presence head joins the head group with fresh state."""
    from dsntpose.training import PoseModule
    from dsntpose.training.module import upgrade_optimizer_state

    run = RunConfig.from_dict(
        {
            "model": {"backbone": "resnet18", "output_stride": 32, "input_size": 64,
                      "presence": True},
            "optim": {"optimizer": "adam", "lr": 1e-3},
        }
    )  # fmt: skip
    model = PoseModule(run.to_dict()).model
    old = torch.optim.Adam(
        [
            {"params": list(model.head.parameters()), "lr": 1e-3, "name": "head"},
            {"params": list(model.backbone.parameters()), "lr": 1e-3, "name": "backbone"},
        ]
    )
    loss = model(torch.rand(2, 3, 64, 64)).coords.square().sum()
    loss.backward()
    old.step()
    saved = old.state_dict()
    upgrade_optimizer_state(saved, model)
    module = PoseModule(run.to_dict())
    new = module.configure_optimizers()["optimizer"]
    new.load_state_dict(saved)
    by_id = {id(p): n for n, p in module.model.named_parameters()}
    moments = {by_id[id(p)]: s["exp_avg"] for p, s in new.state.items()}
    expected = {n: old.state[p]["exp_avg"] for n, p in model.named_parameters() if p in old.state}
    assert moments.keys() == expected.keys()  # the presence head: no state yet
    assert not any(n.startswith("presence.") for n in moments)
    for name, value in expected.items():
        assert torch.equal(moments[name], value), name
    assert [len(g["params"]) for g in new.param_groups] == [
        len([*module.model.head.parameters(), *module.model.presence.parameters()]),
        len(list(module.model.backbone.parameters())),
    ]
