"""Training: samplers, one tiny synthetic run (checkpoints, logs, validation PCK), resume,
the NaN guard and float32 losses under mixed precision."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from dsntpose.config import RunConfig, load_config
from dsntpose.data.synthetic import Synthetic
from dsntpose.datasets import build_datasets
from dsntpose.inference import evaluate_checkpoint
from dsntpose.training import (
    EpochSampler,
    PoseModule,
    TrainingDiverged,
    check_resume,
    fit,
    resolve_precision,
)

STEPS_PER_EPOCH = 4  # 32 training samples, batch 8


def tiny_run(out_dir: Path, **sections: dict) -> RunConfig:
    """A run that trains in about a second on a CPU."""
    values = {
        "model": {"backbone": "resnet18", "output_stride": 32, "input_size": 64, "joints": "lsp"},
        "data": {
            "dataset": "synthetic",
            "synthetic_train": 32,
            "synthetic_val": 16,
            "batch_size": 8,
            "num_workers": 0,
        },
        "optim": {"optimizer": "adam", "lr": 1e-3, "milestones": [5]},
        "train": {
            "epochs": 1,
            "out_dir": str(out_dir),
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "log_every": 1,
            "vis_every": 1,
            "ckpt_every": 2,
            "progress_bar": False,
        },
    }
    for name, overrides in sections.items():
        values[name] = {**values.get(name, {}), **overrides}
    return RunConfig.from_dict(values)


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tiny_run(tmp_path_factory.mktemp("run") / "tiny")
    return run, fit(run, resume="never")


# ---- samplers --------------------------------------------------------------------------


class _Recorder(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.epoch = -1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def test_the_data_section_sets_every_augmentation_field_and_shares_its_defaults(tmp_path):
    import dataclasses

    from dsntpose.config import DataConfig
    from dsntpose.data.transforms import Augment
    from dsntpose.datasets import _augment_for

    names = [f.name for f in dataclasses.fields(Augment)]
    defaults = DataConfig()
    assert {n: getattr(defaults, n) for n in names} == dataclasses.asdict(Augment())
    changed = {"scale_sigma": 0.1, "rotation_prob": 0.0, "flip_prob": 0.25, "color_high": 1.2}
    augment = _augment_for(tiny_run(tmp_path, data=changed))
    assert isinstance(augment, Augment)
    assert {n: getattr(augment, n) for n in changed} == changed
    assert _augment_for(tiny_run(tmp_path, data={"augment": False})) is False


def test_sampler_order_depends_only_on_seed_and_epoch():
    a = EpochSampler(_Recorder(), 50, shuffle=True, seed=3, epoch=2)
    b = EpochSampler(_Recorder(), 50, shuffle=True, seed=3, epoch=2)
    assert list(a) == list(b)
    assert sorted(a) == list(range(50))
    b.set_epoch(3)
    assert list(a) != list(b)
    assert b.dataset.epoch == 3  # the dataset's augmentation follows the epoch


def test_sampler_shards_pad_for_training_and_cover_once_for_validation():
    shards = [
        list(EpochSampler(_Recorder(), 10, shuffle=True, rank=r, world_size=3)) for r in range(3)
    ]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set().union(*shards) == set(range(10))
    val = [
        list(EpochSampler(_Recorder(), 10, shuffle=False, rank=r, world_size=3, pad=False))
        for r in range(3)
    ]
    assert sorted(i for s in val for i in s) == list(range(10))
    assert [
        len(EpochSampler(_Recorder(), 10, shuffle=False, rank=r, world_size=3, pad=False))
        for r in range(3)
    ] == [4, 3, 3]


def test_sampler_skip_applies_to_the_next_pass_only():
    s = EpochSampler(_Recorder(), 12, shuffle=True, seed=0)
    full = list(s)
    s.skip(5)
    assert list(s) == full[5:]
    assert list(s) == full
    assert len(s) == 12
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(_Recorder(), 4, shuffle=False, rank=2, world_size=2)


# ---- one tiny run ----------------------------------------------------------------------


def test_checkpoint_format(trained):
    from dsntpose.checkpoint import load_checkpoint

    run, result = trained
    assert result.global_step == STEPS_PER_EPOCH
    assert result.best is not None and result.last is not None
    ckpt = torch.load(result.last, map_location="cpu", weights_only=True)  # plain contents only
    assert ckpt["hyper_parameters"]["config"] == run.to_dict()
    assert ckpt["global_step"] == STEPS_PER_EPOCH
    assert ckpt["state_dict"] and all(k.startswith("model.") for k in ckpt["state_dict"])
    assert "optimizer_states" in ckpt and "lr_schedulers" in ckpt and "rng_states" in ckpt
    _, model_cfg, config = load_checkpoint(result.best)
    assert model_cfg == run.model
    assert config == run.to_dict()
    # the resolved config beside the checkpoints repeats the run
    assert load_config(result.out_dir / "config.yaml") == run


def test_logs_curves_and_pictures(trained):
    _, result = trained
    with (result.out_dir / "logs" / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0])
    assert {
        "train/loss",
        "train/ips",
        "val/loss",
        "val/pck",
        "lr-Adam/head",
        "lr-Adam/backbone",
    } <= columns
    losses = [float(r["train/loss"]) for r in rows if r["train/loss"]]
    assert len(losses) == STEPS_PER_EPOCH and all(np.isfinite(losses))
    assert list((result.out_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert (result.out_dir / "vis" / "epoch_000.png").stat().st_size > 1000


def test_validation_counts_every_labelled_joint_once(trained):
    run, result = trained
    record = json.loads((result.out_dir / "val_metrics.json").read_text())
    _, val = build_datasets(run)
    labelled = sum(int((~val[i]["joints_missing"]).sum()) for i in range(len(val)))
    assert sum(record["counts"].values()) == labelled
    assert record["metric"] == "PCK" and record["threshold"] == 0.2
    assert record["total"] == pytest.approx(result.metrics["val/pck"], abs=1e-4)


def test_evaluate_checkpoint_reproduces_the_validation_pck(trained):
    _, result = trained
    evaluation = evaluate_checkpoint(result.last, split="val")
    assert evaluation.split == "val"
    assert evaluation.result.total == pytest.approx(result.metrics["val/pck"], abs=1e-4)
    assert evaluation.preds_px.shape == (16, 14, 2)
    assert evaluation.samples["images"].shape == (8, 3, 64, 64)


def test_resume_at_epoch_boundary_equals_an_uninterrupted_run(trained, tmp_path):
    _, result = trained
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(result.out_dir, resumed_dir)
    two = tiny_run(resumed_dir, train={"epochs": 2})
    resumed = fit(two, resume="auto")
    assert resumed.resumed_from == resumed_dir / "last.ckpt"
    assert resumed.global_step == 2 * STEPS_PER_EPOCH
    straight = fit(tiny_run(tmp_path / "straight", train={"epochs": 2}), resume="never")
    a, b = state(resumed.last), state(straight.last)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_refuses_a_different_model(trained, tmp_path):
    run, result = trained
    other = tiny_run(result.out_dir, model={"backbone": "resnet34", "output_stride": 16})
    with pytest.raises(ValueError) as err:
        check_resume(result.last, other)
    assert "model.backbone: checkpoint 'resnet18', config 'resnet34'" in str(err.value)
    assert "model.output_stride: checkpoint 32, config 16" in str(err.value)
    with pytest.raises(ValueError, match="already holds a run"):
        fit(run, resume="never")
    with pytest.raises(FileNotFoundError, match="checkpoint to resume from not found"):
        fit(run, resume=str(tmp_path / "absent.ckpt"))


class _Poison(L.Callback):
    """Turns the head's weights into NaN before step ``at`` (a divergence, on purpose)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at:
            with torch.no_grad():
                pl_module.model.head.conv.weight.fill_(float("nan"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tiny_run(tmp_path / "nan", train={"epochs": 2})
    with pytest.raises(TrainingDiverged) as err:
        fit(run, resume="never", extra_callbacks=[_Poison(at=3)])
    message = str(err.value)
    assert "loss is nan at epoch 0, step 3" in message
    assert f"the last good checkpoint is {tmp_path / 'nan' / 'last.ckpt'}" in message
    ckpt = torch.load(tmp_path / "nan" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )


def test_losses_are_float32_under_bf16_autocast():
    module = PoseModule(tiny_run(Path("unused")).to_dict())
    data = Synthetic(4, size=64, joints="lsp")
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(batch["image"])
        loss = module._loss(out, batch)
    assert out.logits.dtype == torch.bfloat16  # the network itself did run in bf16
    assert out.heatmaps.dtype == torch.float32 and out.coords.dtype == torch.float32
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_bf16_on_a_cpu_without_native_bfloat16_warns(tmp_path, monkeypatch):
    import warnings

    import dsntpose.training.run_folder as training

    run = tiny_run(tmp_path, train={"precision": "bf16-mixed", "accelerator": "cpu"})
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match=r"16x slower than '32-true' on an AVX2 CPU"):
        assert resolve_precision(run) == "bf16-mixed"
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision(run) == "bf16-mixed"
    monkeypatch.undo()
    assert isinstance(training.cpu_has_native_bf16(), bool)


def test_precision_and_data_errors(tmp_path):
    assert resolve_precision(tiny_run(tmp_path, train={"precision": "auto"})) in (
        "32-true",
        "bf16-mixed",
        "16-mixed",
    )
    if not torch.cuda.is_available():
        assert resolve_precision(tiny_run(tmp_path, train={"precision": "auto"})) == "32-true"
        with pytest.raises(ValueError, match=r"train\.precision: '16-mixed' needs a CUDA GPU"):
            resolve_precision(tiny_run(tmp_path, train={"precision": "16-mixed"}))
    lsp = tiny_run(
        tmp_path / "out",
        model={"joints": "lsp"},
        data={"dataset": "lsp", "root": str(tmp_path / "no_lsp")},
    )
    with pytest.raises(FileNotFoundError, match=r"dsntpose data lsp --data.root DIR"):
        fit(lsp)
    mpii = tiny_run(
        tmp_path / "out",
        model={"joints": "mpii"},
        data={"dataset": "mpii", "root": None},
    )
    with pytest.raises(
        FileNotFoundError, match=r"data\.root is not set.*human-pose\.mpi-inf\.mpg\.de"
    ):
        fit(mpii)


def test_time_budget_moves_the_last_epochs_with_the_machine_speed():
    from types import SimpleNamespace

    from dsntpose.demo import TimeBudget

    def trainer_after(epoch: int, milestone: int):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [milestone], 0.1)
        return SimpleNamespace(
            current_epoch=epoch,
            lr_scheduler_configs=[SimpleNamespace(scheduler=scheduler)],
            fit_loop=SimpleNamespace(max_epochs=8),
        )

    plan = TimeBudget(100.0, final_epochs=1)
    fast = trainer_after(0, milestone=7)
    plan.start = time.perf_counter() - 19.9  # about 20 s per epoch: 4 more fit
    plan.on_train_epoch_end(fast, None)
    assert fast.fit_loop.max_epochs == 5
    assert list(fast.lr_scheduler_configs[0].scheduler.milestones) == [4]

    slow = trainer_after(0, milestone=7)
    plan.start = time.perf_counter() - 60.0  # nothing more fits, but end on the lower rate
    plan.on_train_epoch_end(slow, None)
    assert slow.fit_loop.max_epochs == 2
    assert list(slow.lr_scheduler_configs[0].scheduler.milestones) == [1]

    spent = trainer_after(1, milestone=1)  # the lowered epoch has run and time is up
    plan.start = time.perf_counter() - 120.0
    plan.on_train_epoch_end(spent, None)
    assert spent.fit_loop.max_epochs == 2

    # slow first epoch: 2 planned, the second at the lowered rate; it then runs fast, but the
    # budget left must not add a third epoch at a tenth of the rate
    early = trainer_after(1, milestone=1)
    early.fit_loop.max_epochs = 2
    plan.start = time.perf_counter() - 50.0  # 25 s per epoch: 2 more would fit
    plan.on_train_epoch_end(early, None)
    assert early.fit_loop.max_epochs == 2
    with pytest.raises(ValueError, match="final_epochs"):
        TimeBudget(10.0, final_epochs=0)


# ---- resume exact with the cosine schedule, and a changed optimiser setting -----------------


class _CopyAt(L.Callback):
    """Copies ``last.ckpt`` aside right after the step-``at`` checkpoint (a kill there; Lightning
    runs checkpoint callbacks last, so this looks at the start of the next batch)."""

    def __init__(self, at: int, dest: Path) -> None:
        self.at, self.dest = at, dest

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.at and not self.dest.exists():
            shutil.copy(Path(trainer.default_root_dir) / "last.ckpt", self.dest)
            saved = torch.load(self.dest, map_location="cpu", weights_only=True)
            assert saved["global_step"] == self.at


COSINE = {"optimizer": "adam", "lr": 1e-3, "schedule": "cosine", "warmup_steps": 2}


def test_resume_mid_epoch_is_bit_identical_with_the_cosine_schedule(tmp_path):
    """Killed at step 6 (mid epoch 1 of 3, 4 steps an epoch) and resumed: every tensor equal,
    the weight average's (``train.ema_decay``) included. Before the fix, the cosine schedule
    built the loader before the loop state was restored, so the resumed epoch trained its
    first batches again."""
    train = {"epochs": 3, "deterministic": True, "ema_decay": 0.9}
    killed = tmp_path / "killed.ckpt"
    straight = fit(
        tiny_run(tmp_path / "straight", optim=COSINE, train=train),
        resume="never",
        extra_callbacks=[_CopyAt(6, killed)],
    )
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copy(killed, resumed_dir / "last.ckpt")
    resumed = fit(tiny_run(resumed_dir, optim=COSINE, train=train), resume="auto")
    assert resumed.global_step == straight.global_step == 3 * STEPS_PER_EPOCH
    a = torch.load(resumed.last, map_location="cpu", weights_only=True)
    b = torch.load(straight.last, map_location="cpu", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert int(a["state_dict"]["ema.updates"]) == 3 * STEPS_PER_EPOCH
    differ = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert differ == []
    assert a["lr_schedulers"] == b["lr_schedulers"]


def test_resume_applies_a_changed_lr_and_refuses_another_optimizer(trained, tmp_path, capsys):
    _, result = trained
    out = tmp_path / "run"
    shutil.copytree(result.out_dir, out)
    run = tiny_run(out, optim={"lr": 5e-4}, train={"epochs": 2})
    with pytest.raises(ValueError, match=r"optim\.optimizer: the config says 'sgd'"):
        fit(tiny_run(out, optim={"optimizer": "sgd"}, train={"epochs": 2}), resume="auto")
    fit(run, resume="auto")
    err = capsys.readouterr().err
    assert "optim.lr 0.0005 (was 0.001)" in err
    assert "changed data or loss settings" not in err  # nothing else changed
    ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=True)
    groups = ckpt["optimizer_states"][0]["param_groups"]
    assert [g["lr"] for g in groups] == [5e-4, 5e-4]
    assert ckpt["hyper_parameters"]["config"]["optim"]["lr"] == 5e-4


class _Kill(L.Callback):
    """SIGTERM to this process at the start of step ``at`` (what ``kill PID`` sends)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


class _CtrlC(L.Callback):
    """Ctrl-C after step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.at:
            raise KeyboardInterrupt


def test_ctrl_c_saves_last_and_says_how_to_resume_then_max_steps_stops(tmp_path):
    import signal

    from dsntpose.training import TrainingInterrupted

    out = tmp_path / "run"
    run = tiny_run(out, train={"epochs": 3, "ckpt_every": 0})
    try:
        with pytest.raises(TrainingInterrupted) as err:
            fit(run, resume="never", extra_callbacks=[_CtrlC(at=3)])
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert f"{out / 'last.ckpt'} saved at step 3" in str(err.value)
    assert f"resume with: dsntpose train --config {out / 'config.yaml'}" in str(err.value)
    assert torch.load(out / "last.ckpt", weights_only=True)["global_step"] == 3
    stopped = fit(tiny_run(out, train={"epochs": 3, "ckpt_every": 0, "max_steps": 6}))
    assert stopped.global_step == 6
    assert torch.load(out / "last.ckpt", weights_only=True)["global_step"] == 6


def test_sigterm_finishes_the_step_saves_last_and_resumes(tmp_path):
    """``kill PID`` (SIGTERM; a background job ignores SIGINT) ends the running step, saves
    last.ckpt there and says how to resume; the resumed run goes on from that step."""
    from dsntpose.training import TrainingInterrupted

    out = tmp_path / "run"
    run = tiny_run(out, train={"epochs": 3, "ckpt_every": 0})
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(TrainingInterrupted) as err:
            fit(run, resume="never", extra_callbacks=[_Kill(at=3)])
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert f"{out / 'last.ckpt'} saved at step 4" in str(err.value)
    assert torch.load(out / "last.ckpt", weights_only=True)["global_step"] == 4
    resumed = fit(tiny_run(out, train={"epochs": 3, "ckpt_every": 0, "max_steps": 6}))
    assert resumed.resumed_from == out / "last.ckpt"
    assert resumed.global_step == 6


def test_resume_names_changed_data_and_loss_settings_not_moved_folders(trained, tmp_path, capsys):
    """An edited recipe (or a dropped override) changes what a resumed run trains on: said in
    one line at resume, next to the step it applies from; moving the data is not a change."""
    from dsntpose.training.run_folder import recipe_changes

    _, result = trained
    saved = torch.load(result.last, map_location="cpu", weights_only=True)
    config = saved["hyper_parameters"]["config"]
    run = tiny_run(result.out_dir, data={"flip_prob": 0.0}, loss={"reg_weight": 2.0})
    changes = recipe_changes(config, run)
    assert changes == {
        "data.flip_prob": (config["data"]["flip_prob"], 0.0),
        "loss.reg_weight": (config["loss"]["reg_weight"], 2.0),
    }
    moved = tiny_run(result.out_dir, data={"num_workers": 3})
    assert recipe_changes(config, moved) == {}
    check_resume(result.last, run)
    err = capsys.readouterr().err
    assert "with changed data or loss settings, applied from this step" in err
    assert "data.flip_prob 0.0 (was 0.5)" in err
