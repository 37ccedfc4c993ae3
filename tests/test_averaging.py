"""train.ema_decay: the weight average's arithmetic, what a run validates and saves with it,
what reads it back, and turning it on or off when resuming (a run resumed mid-epoch with it is
bit-identical: tests/test_training.py's resume test runs with an average)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from dsntpose.checkpoint import load_checkpoint
from dsntpose.inference import evaluate_checkpoint
from dsntpose.training import fit
from dsntpose.training.averaging import WeightAverage
from test_training import STEPS_PER_EPOCH, tiny_run


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def test_the_average_follows_the_formula_with_its_warm_up() -> None:
    net = small_net()
    average = WeightAverage(net, decay=0.9)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    for n in range(30):  # the decay: min(0.9, (1 + n) / (10 + n)): 0.1, 0.18, ... then 0.9
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net.train()(torch.randn(2, 3, 5, 5))  # moves BatchNorm's statistics and its count
        d = min(0.9, (1 + n) / (10 + n))
        assert average.current_decay() == pytest.approx(d)
        average.update(net)
        for key, value in net.state_dict().items():
            if value.is_floating_point():
                expected[key] = d * expected[key] + (1 - d) * value
            else:
                expected[key] = value.clone()
    got = average.network.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert int(got["1.num_batches_tracked"]) == 30  # integer buffers are copied
    assert int(average.updates) == 30
    assert not any(p.requires_grad for p in average.network.parameters())


def test_the_average_refuses_bad_decays_and_another_network() -> None:
    for decay in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
            WeightAverage(small_net(), decay)
    with pytest.raises(ValueError, match="not the network it averages"):
        WeightAverage(small_net(), 0.9).update(nn.Linear(2, 2))


class _Weights(L.Callback):
    """The network's weights at the start and after every optimiser step."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer, pl_module):
        self.start = {k: v.clone() for k, v in pl_module.model.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.steps.append({k: v.clone() for k, v in pl_module.model.state_dict().items()})


def test_a_run_averages_each_step_validates_the_average_and_ships_it(tmp_path: Path) -> None:
    seen = _Weights()
    run = tiny_run(tmp_path / "run", train={"epochs": 2, "ema_decay": 0.8})
    result = fit(run, resume="never", extra_callbacks=[seen])
    assert len(seen.steps) == 2 * STEPS_PER_EPOCH
    saved = torch.load(result.last, map_location="cpu", weights_only=True)["state_dict"]
    assert int(saved["ema.updates"]) == 2 * STEPS_PER_EPOCH
    # the average replayed from the initial weights and every step's
    replay = dict(seen.start)
    for n, step in enumerate(seen.steps):
        d = min(0.8, (1 + n) / (10 + n))
        for key, value in step.items():
            replay[key] = d * replay[key] + (1 - d) * value if value.is_floating_point() else value
    model, _, _ = load_checkpoint(result.last)  # reads the average
    averaged = model.state_dict()
    for key, value in replay.items():
        torch.testing.assert_close(averaged[key], value, rtol=1e-4, atol=1e-5, msg=key)
    raw = {k.removeprefix("model."): v for k, v in saved.items() if k.startswith("model.")}
    assert any(not torch.equal(averaged[k], v) for k, v in raw.items() if v.is_floating_point())
    # val/pck is the average's (evaluate_checkpoint reproduces it); the raw weights' beside it
    assert evaluate_checkpoint(result.last, split="val").result.total == pytest.approx(
        result.metrics["val/pck"], abs=1e-4
    )
    with (result.out_dir / "logs" / "csv" / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/pck_raw")]
    assert len(rows) == 2
    record = json.loads((result.out_dir / "val_metrics.json").read_text())
    assert record["pck_raw"] == pytest.approx(float(rows[-1]["val/pck_raw"]), abs=1e-4)


def test_turning_the_average_on_or_off_when_resuming(tmp_path: Path) -> None:
    plain = fit(tiny_run(tmp_path / "run"), resume="never")
    before = torch.load(plain.last, map_location="cpu", weights_only=True)["state_dict"]
    on = fit(tiny_run(plain.out_dir, train={"epochs": 2, "ema_decay": 0.5}), resume="auto")
    after = torch.load(on.last, map_location="cpu", weights_only=True)["state_dict"]
    # averaged from the resumed weights, over the steps taken since
    assert int(after["ema.updates"]) == STEPS_PER_EPOCH
    key = next(k for k in before if k.startswith("model.") and before[k].is_floating_point())
    assert not torch.equal(after["ema.network." + key.removeprefix("model.")], before[key])
    off = fit(tiny_run(plain.out_dir, train={"epochs": 3}), resume="auto")
    final = torch.load(off.last, map_location="cpu", weights_only=True)["state_dict"]
    assert not any(k.startswith("ema.") for k in final)
    assert off.global_step == 3 * STEPS_PER_EPOCH
