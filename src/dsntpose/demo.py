"""``dsntpose demo`` (``make demo``): fine-tune an ImageNet-pretrained DSNT model for a few
minutes on the synthetic set or on LSP, evaluate it on the test split and draw the results.

The demo measures a training step first (:func:`pick_cpu_threads`), plans as many epochs as
fit in the time asked for, and lets :class:`TimeBudget` move the end (and the lowered
learning rate with it) when the machine turns out faster or slower.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from dsntpose.config import RunConfig
from dsntpose.inference import evaluate_checkpoint
from dsntpose.model import build_model
from dsntpose.training import FitResult, fit, run_paths
from dsntpose.viz import plot_training_curves, prediction_picture, save_figure, save_image

__all__ = ["TimeBudget", "demo_config", "pick_cpu_threads", "run_demo"]


def demo_config(
    data_root: str | None, out_dir: str, epochs: int = 8, val_every: int = 1
) -> RunConfig:
    """The demo's run, sized for two CPU cores: EfficientNet-Lite0 from ImageNet weights with
    the DSNT head and the JS regulariser.

    128 px crops at output stride 16 give 8 px heatmaps. Synthetic (``data_root`` None):
    epochs of 2048 new figures, no augmentation, 256 for validation. LSP: the standard 1000
    training images with the paper's augmentation, validated on the first 256 test images
    during training (the reported number is on all 1000 test images, from the last
    checkpoint: nothing is selected on test). Adam 1e-3, the last epoch (LSP: the last
    quarter) at a tenth of it, channels-last. ``epochs`` is planned by :func:`run_demo`.
    """
    lsp = data_root is not None
    decay = max(1, epochs - (max(1, epochs // 4) if lsp else 1))
    return RunConfig.from_dict(
        {
            "model": {
                "backbone": "efficientnet_lite0",
                "output_stride": 16,
                "head": "dsnt",
                "input_size": 128,
                "joints": "lsp",
                "weights": "imagenet",
            },
            "loss": {"regularizer": "js", "reg_weight": 1.0, "sigma": 1.0},
            "data": {
                "dataset": "lsp" if lsp else "synthetic",
                "root": data_root,
                "augment": lsp,
                "batch_size": 16,
                "num_workers": 0,
                "val_subset": 256 if lsp else None,
                "synthetic_train": 2048,
                "synthetic_val": 256,
            },
            "optim": {"optimizer": "adam", "lr": 1e-3, "milestones": [decay], "gamma": 0.1},
            "train": {
                "epochs": epochs,
                "precision": "32-true",
                "accelerator": "cpu",
                "devices": 1,
                "out_dir": out_dir,
                "log_every": 10,
                "val_every": val_every,
                "vis_every": 1,
                "ckpt_every": 100,
                "channels_last": True,
            },
        }
    )


def _demo_epochs(run: RunConfig, step_seconds: float, minutes: float) -> int:
    """Epochs of ``run`` that fit in ``minutes`` at ``step_seconds`` per measured step.

    The measured step leaves out data loading, the optimiser and validation; a factor of 1.4
    (measured on the demo's own runs) covers them.
    """
    samples = 1000 if run.data.dataset == "lsp" else run.data.synthetic_train
    steps_per_epoch = math.ceil(samples / run.data.batch_size)
    return max(2, int(minutes * 60 / (1.4 * step_seconds * steps_per_epoch)))


def run_demo(
    data_root: str | None,
    out_dir: str | None = None,
    *,
    minutes: float = 8.0,
    epochs: int | None = None,
) -> FitResult:
    """``dsntpose demo``: plan, train, evaluate and draw; prints what it does.

    Args:
        data_root: an LSP folder, or None for the synthetic set.
        out_dir: the run folder (default ``runs/demo-TIME``).
        minutes: the training time to plan for.
        epochs: train exactly this many epochs instead of planning (>= 1).

    Returns:
        The :class:`~dsntpose.training.FitResult`.
    """
    start = time.perf_counter()
    if epochs is not None and epochs < 1:
        raise ValueError(f"--epochs: must be >= 1 (or unset, to plan), got {epochs}")
    if not minutes > 0:
        raise ValueError(f"--minutes: must be > 0, got {minutes}")
    if data_root is not None and not Path(data_root).expanduser().is_dir():
        raise FileNotFoundError(
            f"--data_root {data_root} does not exist; fetch LSP with "
            f"`dsntpose data lsp --data.root {data_root}`, or leave DATA unset for the "
            "synthetic demo"
        )
    out_dir = out_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    what = f"LSP at {data_root}" if data_root else "the synthetic pose set"

    run = demo_config(data_root, out_dir)
    threads, step_seconds = pick_cpu_threads(run)
    epochs = epochs or _demo_epochs(run, step_seconds, minutes)
    val_every = max(1, epochs // 5) if data_root else 1
    run = demo_config(data_root, out_dir, epochs, val_every)
    print(
        f"demo: a training step takes {step_seconds:.2f} s here with {threads} CPU thread(s), "
        f"so {epochs} epochs fit in {minutes:g} minutes",
        flush=True,
    )
    print(
        f"demo: fine-tuning {run.model.backbone} (ImageNet weights) + DSNT/JS "
        f"({run.model.input_size} px crops, {run.model.heatmap_size} px heatmaps) on {what} "
        f"into {out_dir}",
        flush=True,
    )
    # The plan follows the machine's speed from epoch to epoch; max_time is a safety net.
    final_epochs = max(1, run.train.epochs - run.optim.milestones[0])
    plan = TimeBudget(minutes * 60, final_epochs=final_epochs)
    limit = {"seconds": round(min(minutes * 1.2, minutes + 1.5) * 60)}
    result = fit(run, resume="never", extra_callbacks=[plan], max_time=limit)
    trained = time.perf_counter() - start
    assert result.last is not None
    evaluation = evaluate_checkpoint(result.last, split="test", progress=True)
    print()
    print(evaluation.result)
    out = Path(out_dir)
    picture = save_image(
        prediction_picture(evaluation.samples, evaluation.result.joint_set, tile=192),
        out / "predictions.png",
    )
    paths = run_paths(out)
    curves = save_figure(plot_training_curves(paths.csv_dir), out / "training_curves.png")
    total = time.perf_counter() - start
    print()
    print(f"demo: {result.global_step} training steps in {trained:.0f} s; {total:.0f} s in all")
    split = "test" if data_root else "validation"
    print(
        f"demo: PCK@0.2 {evaluation.result.total:.1f}% on {len(evaluation.preds_px)} "
        f"{split} images of {what}"
    )
    summary = {
        "data": "lsp" if data_root else "synthetic",
        "model": f"{run.model.backbone}-os{run.model.output_stride} (ImageNet weights), DSNT + JS",
        "input_size": run.model.input_size,
        "steps": result.global_step,
        "epochs": run_epochs(paths.metrics_csv),
        "train_seconds": round(trained),
        "total_seconds": round(total),
        "threads": torch.get_num_threads(),
        "pck20": round(float(evaluation.result.total), 2),
        "images": len(evaluation.preds_px),
        "split": split,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"demo: predictions drawn in {picture} (white: ground truth, red: error)")
    print(f"demo: training curves in {curves}")
    print(
        f"demo: checkpoints in {out} ({paths.last.name}, {paths.best.name}); config {paths.config}"
    )
    print(f"demo: TensorBoard: tensorboard --logdir {paths.tensorboard.parent}")
    return result


class TimeBudget(L.Callback):
    """Fit a run into a time budget, ending on the lowered learning rate.

    The run's ``MultiStepLR`` should have one milestone: the epochs from it on run at the
    lowered rate (the demo puts it at its planned last epoch). After every training epoch
    (validation included) the time per epoch so far says how many more epochs fit in
    ``seconds``; the trainer's epoch count is set to that and the milestone moved so that the
    last ``final_epochs`` epochs still run at the lowered rate. Until the rate is lowered at
    least one more epoch is kept, so a run may overrun by at most one epoch. Once it is
    lowered the plan can only shrink: an epoch that ran faster than the ones before never adds
    epochs at the lowered rate (more than ``final_epochs`` of them would waste the budget on a
    tenth of the rate). When the machine is as fast as planned nothing changes.

    Args:
        seconds: the training time to plan for.
        final_epochs: how many epochs at the end run at the lowered rate.
    """

    def __init__(self, seconds: float, final_epochs: int = 1) -> None:
        if seconds <= 0 or final_epochs < 1:
            raise ValueError("TimeBudget: need seconds > 0 and final_epochs >= 1")
        self.seconds = float(seconds)
        self.final_epochs = int(final_epochs)
        self.start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.current_epoch + 1
        elapsed = time.perf_counter() - self.start
        more = int((self.seconds - elapsed) / (elapsed / done))
        schedulers = [
            c.scheduler
            for c in trainer.lr_scheduler_configs
            if isinstance(c.scheduler, torch.optim.lr_scheduler.MultiStepLR)
        ]
        lowered = any(min(s.milestones) <= done for s in schedulers)
        planned = trainer.fit_loop.max_epochs
        if planned is None:  # Lightning sets it when fitting starts
            raise RuntimeError("TimeBudget: the trainer has no max_epochs while fitting")
        if not lowered:
            more = max(more, 1)
            last = done + more
            for scheduler in schedulers:  # stepped after this hook: epoch `milestone` is low
                scheduler.milestones = Counter([max(done, last - self.final_epochs)])
            trainer.fit_loop.max_epochs = last
        else:  # at the lowered rate: never more epochs than planned when it was lowered
            trainer.fit_loop.max_epochs = min(planned, done + max(0, more))


def run_epochs(metrics_csv: Path) -> int | None:
    """The epochs a run's CSV log records (None without a log)."""
    if not metrics_csv.is_file():
        return None
    with metrics_csv.open() as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f) if r.get("epoch")]
    return max(epochs) + 1 if epochs else None


def pick_cpu_threads(run: RunConfig, candidates: Sequence[int] | None = None) -> tuple[int, float]:
    """Time training steps of ``run``'s model per thread count; keep the fastest.

    On a machine whose cores are busy with other work, OpenMP threads that wait for each
    other can make two threads many times slower than one; this measures what runs fastest
    now (a few seconds for small models), calls ``torch.set_num_threads`` with it and returns
    ``(threads, seconds per training step)`` at ``data.batch_size`` (forward, loss and
    backward; data loading and the optimiser step not included). ``candidates`` default: 1
    and the current thread count.
    """
    current = torch.get_num_threads()
    options = sorted(set(candidates or (1, current)))
    size, batch = run.model.input_size, run.data.batch_size
    model = build_model(dataclasses.replace(run.model, weights=None))
    if run.train.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    images = torch.rand(batch, 3, size, size)
    target = torch.zeros(batch, run.model.num_joints, 2)
    mask = torch.ones(batch, run.model.num_joints)
    timings: dict[int, float] = {}
    for threads in options:
        torch.set_num_threads(threads)
        for repeat in range(4):  # the first step warms up
            start = time.perf_counter()
            out = model(images)
            model.loss(out, target, mask, run.loss).backward()  # type: ignore[no-untyped-call]
            if repeat:
                elapsed = time.perf_counter() - start
                timings[threads] = min(timings.get(threads, math.inf), elapsed)
    best = min(timings, key=timings.__getitem__)
    torch.set_num_threads(best)
    return best, timings[best]
