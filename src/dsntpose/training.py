"""Training with Lightning: the one module that imports it.

Read top to bottom: where the samples come from (:func:`build_datasets`, :class:`EpochSampler`),
what one step does (:class:`PoseModule`: forward, the head's loss in float32, validation PCK in
original image pixels), and how a run is launched, saved and resumed (:func:`make_trainer`,
:func:`fit`). Lightning carries devices, precision, DDP, checkpoints, logs and progress bars.

A run folder (``train.out_dir``) holds::

    config.yaml        the resolved RunConfig: `dsntpose train --config DIR/config.yaml` repeats it
    last.ckpt          saved every `train.ckpt_every` steps and at every epoch end (resume point)
    best.ckpt          the best validation PCK so far
    val_metrics.json   the latest validation table (PCK per group, joint counts)
    logs/csv/metrics.csv, logs/tensorboard/   scalars (loss, PCK, learning rate, images/s)
    vis/epoch_NNN.png  a grid of validation predictions every `train.vis_every` validations

Checkpoints are Lightning checkpoints: ``hyper_parameters["config"]`` is the full run config as
plain dicts and the network is the module attribute ``model`` (``state_dict`` keys ``model.*``),
which is what :func:`dsntpose.model.load_checkpoint` reads.

Reproducibility and resume: the sampling order depends only on ``(seed, epoch, rank)`` and the
augmentation only on ``(seed, epoch, index)``, never on a global generator, so a run resumed
from ``last.ckpt`` sees exactly the samples the uninterrupted run would have seen, also when it
was killed in the middle of an epoch (the sampler skips the batches already trained on).
Optimiser, scheduler, step counters and the global RNG states are in the checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import logging
import math
import os
import random
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from dsntpose.config import ModelConfig, OptimConfig, RunConfig
from dsntpose.data import get_joint_set, worker_init_fn
from dsntpose.datasets import build_datasets, require_root
from dsntpose.evaluate import PCKResult, protocol_for
from dsntpose.heads import HeadOutput
from dsntpose.inference import predict_batch
from dsntpose.metrics import PCKMetric
from dsntpose.model import (
    atomic_torch_save,
    build_model,
    load_initial_weights,
    nonfinite_tensors,
    read_torch_file,
)
from dsntpose.ops import normalized_to_pixel
from dsntpose.zoo import checkpoint_path

__all__ = [
    "EpochSampler",
    "FitResult",
    "PoseModule",
    "RunFolderBusy",
    "SafeCheckpointIO",
    "TrainingDiverged",
    "check_resume",
    "cpu_has_native_bf16",
    "fit",
    "lr_factor",
    "make_trainer",
    "resolve_precision",
    "run_paths",
]

LAST = "last.ckpt"
BEST = "best.ckpt"
MONITOR = "val/pck"


@dataclass(frozen=True)
class RunPaths:
    """Where a run folder keeps each file (see the module docstring)."""

    out_dir: Path
    config: Path
    last: Path
    best: Path
    val_metrics: Path
    csv_dir: Path
    metrics_csv: Path
    tensorboard: Path
    vis: Path


def run_paths(out_dir: str | Path) -> RunPaths:
    """The files of the run folder ``out_dir``: the one place their names are written."""
    out = Path(out_dir)
    return RunPaths(
        out_dir=out,
        config=out / "config.yaml",
        last=out / LAST,
        best=out / BEST,
        val_metrics=out / "val_metrics.json",
        csv_dir=out / "logs" / "csv",
        metrics_csv=out / "logs" / "csv" / "metrics.csv",
        tensorboard=out / "logs" / "tensorboard",
        vis=out / "vis",
    )


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient, weight or BatchNorm statistic stopped the run (the message
    names the step and the last checkpoint this run verified and wrote, if any)."""


class RunFolderBusy(RuntimeError):
    """Another run holds the lock of ``train.out_dir`` (the message names its pid, host and
    start time)."""


# --------------------------------------------------------------------------------------------
# Sampling order (the data sets themselves come from dsntpose.datasets)


class EpochSampler(Sampler[int]):
    """This rank's share of the first ``num_samples`` indices, in an order fixed by the epoch.

    The order depends only on ``(seed, epoch)`` (shuffled) or is ``0, 1, 2, ...``; rank ``r``
    of ``W`` takes positions ``r, r + W, ...``. With ``pad`` (training) the list wraps around
    so that every rank gets ``ceil(N / W)`` indices, as ``DistributedSampler`` does; without it
    (validation) every sample is seen exactly once over all ranks.

    ``set_epoch`` (Lightning calls it before every epoch) also sets the dataset's epoch, which
    seeds its augmentation. ``skip(n)`` drops the first ``n`` indices of the next pass only:
    a run resumed in the middle of an epoch continues where it stopped.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        num_samples: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        epoch: int = 0,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.dataset = dataset
        self.num_samples = int(num_samples)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self._skip = 0
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order (and augmentation, when the dataset has ``set_epoch``)."""
        self.epoch = int(epoch)
        set_dataset_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_dataset_epoch):
            set_dataset_epoch(self.epoch)

    def skip(self, count: int) -> None:
        """Leave out the first ``count`` indices of the next pass (resuming mid-epoch)."""
        self._skip = max(0, int(count))

    def indices(self) -> list[int]:
        """This rank's full list for the current epoch (no skipping)."""
        n, world = self.num_samples, self.world_size
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n).tolist()
        else:
            order = list(range(n))
        if self.pad:
            total = math.ceil(n / world) * world
            order += (order * math.ceil(total / n))[: total - n]
        return order[self.rank :: world]

    def __iter__(self) -> Iterator[int]:
        order = self.indices()[self._skip :]
        self._skip = 0
        return iter(order)

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.num_samples / self.world_size)
        return len(range(self.rank, self.num_samples, self.world_size))


# --------------------------------------------------------------------------------------------
# The LightningModule


def _float32(out: HeadOutput) -> HeadOutput:
    """``out`` with every tensor (and every earlier stack's) in float32."""
    aux = tuple(_float32(a) for a in out.aux)
    return HeadOutput(
        out.coords.float(),
        out.heatmaps.float(),
        out.logits.float(),
        out.confidence.float(),
        aux,
        None if out.presence is None else out.presence.float(),
        None if out.visibility is None else out.visibility.float(),
    )


def _rng_states() -> dict[str, Any]:
    """The global generators' states as tensors and plain values (``weights_only`` loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - saved for resume
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": list(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore what :func:`_rng_states` saved."""
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def lr_factor(step: int, *, optim: OptimConfig, total_steps: int) -> float:
    """The learning-rate multiplier after ``step`` optimiser steps (of ``total_steps``).

    ``optim.schedule == "cosine"``: linear warm-up over ``optim.warmup_steps`` steps, then
    cosine decay from 1 to ``optim.min_lr_ratio`` at ``total_steps``.
    """
    if optim.warmup_steps and step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    span = max(1, total_steps - optim.warmup_steps)
    done = min(1.0, (step - optim.warmup_steps) / span)
    return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * done))


class PoseModule(L.LightningModule):
    """A coordinate regression model trained the way the paper did.

    Args:
        config: the full run config as plain dicts (``RunConfig.to_dict()``); it is saved in
            every checkpoint as ``hyper_parameters["config"]``.

    The network is ``self.model`` (:func:`dsntpose.model.build_model`). A training step scores
    the head's output with ``CoordRegressionModel.loss`` in float32 (whatever the
    precision), logs ``train/loss`` and ``train/ips`` (images per second on this device) and
    stops the run with :class:`TrainingDiverged` on a non-finite loss or gradient. Validation
    predicts (with the flip test if ``train.flip_test``), maps the crop coordinates back to the
    original image pixels, and accumulates PCK (PCKh@0.5 for MPII, PCK@0.2 otherwise) in a
    :class:`dsntpose.evaluate.PCKMetric`, summed over all devices; ``val/pck`` is its total.
    """

    def __init__(self, config: Mapping[str, Any], *, initialise: bool = True) -> None:
        """``config``: the run config dict; ``initialise``: apply ``train.init_from`` (off when
        a checkpoint of this run is about to replace every tensor anyway)."""
        super().__init__()
        self.cfg = RunConfig.from_dict(config)
        self.save_hyperparameters({"config": self.cfg.to_dict()})
        self.model = build_model(self.cfg.model)
        if initialise and self.cfg.train.init_from is not None:
            load_initial_weights(
                self.model, self.cfg.model, checkpoint_path(self.cfg.train.init_from)
            )
        if self.cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.joint_set = get_joint_set(self.cfg.model.joints)
        self.val_pck = PCKMetric(
            self.joint_set.num_joints,
            threshold=protocol_for(self.cfg.data.dataset).threshold,
            total_joints=self.joint_set.pck_total,
        )
        self.train_set: Dataset[dict[str, Any]] | None = None
        self.val_set: Dataset[dict[str, Any]] | None = None
        self._vis: dict[str, Tensor] | None = None
        self._presence_scores: list[tuple[Tensor, ...]] = []
        self._num_validations = 0
        self._step_end: float | None = None
        self._ips: float | None = None
        self.last_result: PCKResult | None = None

    def forward(self, images: Tensor) -> HeadOutput:
        """``images`` ``(B, 3, S, S)`` RGB in ``[0, 1]`` -> the model's ``HeadOutput``."""
        return self.model(images)

    # ---- data ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        if self.train_set is None:
            self.train_set, self.val_set = build_datasets(self.cfg)

    def _loader(self, dataset: Dataset[Any], sampler: EpochSampler) -> DataLoader[Any]:
        workers = self.cfg.data.num_workers
        return DataLoader(
            dataset,
            batch_size=self.cfg.data.batch_size,
            sampler=sampler,
            num_workers=workers,
            worker_init_fn=worker_init_fn if workers else None,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
            persistent_workers=False,  # workers must see each epoch's set_epoch
        )

    def _start_position(self, num_batches: int) -> tuple[int, int]:
        """``(epoch, batches to skip)`` of the first training pass of this ``fit``.

        A fresh run or one resumed from an end-of-epoch checkpoint starts ``current_epoch`` at
        batch 0. A checkpoint written at the end of training batch ``k`` (``processed >
        completed``) continues that epoch after ``k`` batches, as Lightning's loop does; when
        ``k`` was the epoch's last batch, Lightning goes straight on to the next epoch.
        """
        epoch = self.trainer.current_epoch
        loop = self.trainer.fit_loop
        if not loop.restarting:
            return epoch, 0
        progress = loop.epoch_loop.batch_progress.current
        done = progress.completed + int(progress.processed > progress.completed)
        if done >= num_batches:
            return epoch + 1, 0
        return epoch, done

    def train_dataloader(self) -> DataLoader[Any]:
        assert self.train_set is not None
        d, trainer = self.cfg.data, self.trainer
        num = len(self.train_set)  # type: ignore[arg-type]
        if d.train_subset is not None:
            num = min(num, d.train_subset)
        sampler = EpochSampler(
            self.train_set,
            num,
            shuffle=True,
            seed=self.cfg.train.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
        )
        epoch, skip = self._start_position(math.ceil(len(sampler) / d.batch_size))
        sampler.set_epoch(epoch)
        sampler.skip(skip * d.batch_size)
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader[Any]:
        assert self.val_set is not None
        num = len(self.val_set)  # type: ignore[arg-type]
        if self.cfg.data.val_subset is not None:
            num = min(num, self.cfg.data.val_subset)
        sampler = EpochSampler(
            self.val_set,
            num,
            shuffle=False,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
            pad=False,
        )
        return self._loader(self.val_set, sampler)

    # ---- steps --------------------------------------------------------------------------

    def _loss(self, out: HeadOutput, batch: Mapping[str, Tensor]) -> Tensor:
        """The head's loss, computed in float32 outside autocast."""
        with torch.autocast(self.device.type, enabled=False):
            return self.model.loss(
                _float32(out), batch["joints"].float(), batch["mask"].float(), self.cfg.loss, batch
            )

    def _images(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The batch's images, channels-last when ``train.channels_last``."""
        images = batch["image"]
        if self.cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        images = self._images(batch)
        loss = self._loss(self.model(images), batch)
        if not torch.isfinite(loss):
            raise TrainingDiverged(self._diverged(f"loss is {loss.item()}", batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._step_end is not None:
            ips = len(batch["image"]) / max(now - self._step_end, 1e-9)
            self._ips = ips if self._ips is None else 0.9 * self._ips + 0.1 * ips
            self.log("train/ips", self._ips, prog_bar=True, batch_size=1)
        self._step_end = now

    def on_train_epoch_start(self) -> None:
        self._step_end = None

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # With 16-mixed the grad scaler skips steps with infinite gradients by itself.
        if self.trainer.precision == "16-mixed":
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.abs().max() for g in grads]).max()):
            raise TrainingDiverged(self._diverged("a gradient is not finite", None))

    def _diverged(self, what: str, batch: Mapping[str, Tensor] | None) -> str:
        """The message of a :class:`TrainingDiverged`: what, where, and what is kept."""
        kept = _kept_message(self.trainer)
        where = f"epoch {self.current_epoch}, step {self.global_step}"
        if batch is not None and "index" in batch:
            where += f", samples {batch['index'][:8].tolist()}"
        return (
            f"training diverged: {what} at {where}. Stopped; {kept}. "
            "Try a lower optim.lr (or another optim.gamma/schedule) or train.precision 32-true."
        )

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        images = self._images(batch)
        out = self.model(images)
        self.log(
            "val/loss",
            self._loss(out, batch),
            on_epoch=True,
            sync_dist=True,
            batch_size=len(images),
        )
        coords, image_px, _ = predict_batch(
            self.model,
            {**batch, "image": images},
            self.joint_set,
            flip=self.cfg.train.flip_test,
            output=_float32(out),
        )
        self.val_pck.update(
            image_px.to(batch["joints_image"].device),
            batch["joints_image"],
            ~batch["joints_missing"].bool(),
            batch["norm_size"],
        )
        if out.presence is not None and "presence" in batch:
            self._presence_scores.append(
                (
                    out.presence.detach().float().cpu(),
                    batch["presence"].float().cpu(),
                    batch["presence_mask"].float().cpu(),
                    out.visibility.detach().float().cpu(),
                    batch["visible"].float().cpu(),
                    batch["visible_mask"].float().cpu(),
                )
            )
        if batch_idx == 0:
            size = tuple(images.shape[-2:])
            crop_px = normalized_to_pixel(coords, size)
            gt_px = normalized_to_pixel(batch["joints"].float(), size)
            gt_px = torch.where(batch["mask"][..., None] > 0, gt_px, torch.nan)
            self._vis = {"images": images[:8], "pred": crop_px[:8], "gt": gt_px[:8]}

    def on_validation_epoch_end(self) -> None:
        with self.val_pck.sync_context():  # counts summed over all devices
            correct = self.val_pck.correct.cpu().numpy().copy()
            counts = self.val_pck.total.cpu().numpy().copy()
        self.val_pck.reset()
        protocol = protocol_for(self.cfg.data.dataset)
        result = PCKResult(protocol.metric, protocol.threshold, self.joint_set, correct, counts)
        self.last_result = result
        self.log(MONITOR, result.total)
        extra = self._presence_metrics()
        for key, value in extra.items():
            self.log(f"val/{key}", value)
        for group, value in result.groups.items():
            self.log(f"val/pck_{group.lower()}", value)
        if self.trainer.sanity_checking:
            return
        self._num_validations += 1
        if self.trainer.is_global_zero:
            path = run_paths(self.cfg.train.out_dir).val_metrics
            path.parent.mkdir(parents=True, exist_ok=True)
            record = {
                "epoch": self.current_epoch,
                "step": self.global_step,
                **result.to_dict(),
                **{k: None if math.isnan(v) else v for k, v in extra.items()},
            }
            path.write_text(json.dumps(record, indent=2))
            every = self.cfg.train.vis_every
            if every and self._vis is not None and (self._num_validations - 1) % every == 0:
                self._log_predictions()
        self._vis = None

    def _presence_metrics(self) -> dict[str, float]:
        """AUROC of the presence score (person crops against background crops) and of the
        visibility scores (visible against occluded or out-of-crop joints) over this
        validation's batches (this device's; empty for a model without those heads)."""
        from dsntpose.evaluate import auroc

        gathered, self._presence_scores = self._presence_scores, []
        if not gathered:
            return {}
        p, pt, pm, v, vt, vm = (torch.cat(parts) for parts in zip(*gathered))
        return {
            "presence_auroc": auroc(p[pm > 0].numpy(), pt[pm > 0].numpy()),
            "visibility_auroc": auroc(v[vm > 0].numpy(), vt[vm > 0].numpy()),
        }

    def _log_predictions(self) -> None:
        """Draw the first validation crops with predictions and ground truth; save and log."""
        from dsntpose.viz import prediction_picture, save_image

        assert self._vis is not None
        grid = prediction_picture(self._vis, self.joint_set)
        save_image(
            grid, run_paths(self.cfg.train.out_dir).vis / f"epoch_{self.current_epoch:03d}.png"
        )
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(
                    "val/predictions", grid, self.global_step, dataformats="HWC"
                )

    # ---- optimiser and checkpoint extras ------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.cfg.optim
        # two groups, head then backbone, logged as lr-<Optimizer>/head and /backbone
        groups: list[dict[str, Any]] = [
            {"params": list(self.model.head.parameters()), "lr": o.lr, "name": "head"},
            {
                "params": list(self.model.backbone.parameters()),
                "lr": o.lr * o.backbone_lr_ratio,
                "name": "backbone",
            },
        ]
        groups = [g for g in groups if g["params"]]
        optimizer: torch.optim.Optimizer
        if o.optimizer == "rmsprop":
            optimizer = torch.optim.RMSprop(groups, lr=o.lr, weight_decay=o.weight_decay)
        elif o.optimizer == "adam":
            optimizer = torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay)
        else:
            optimizer = torch.optim.SGD(groups, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)
        if o.schedule == "cosine":
            total = max(1, int(self.trainer.estimated_stepping_batches))
            factor = partial(lr_factor, optim=o, total_steps=total)
            scheduler: Any = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
            }
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, o.milestones, o.gamma)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = _rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:
            _set_rng_states(checkpoint["rng_states"])


# --------------------------------------------------------------------------------------------
# Launching, saving and resuming


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made safe for the run folder.

    Before a checkpoint is written, every floating-point tensor of its ``state_dict`` (the
    weights and the BatchNorm buffers) must be finite: otherwise nothing is written and the
    run stops with :class:`TrainingDiverged` (a checkpoint is never poisoned). The file is
    written atomically on its own filesystem (:func:`dsntpose.model.atomic_torch_save`:
    a temporary file beside it, ``fsync``, rename), so a full disk or a kill leaves the
    previous complete file, never a truncated one under the final name.

    ``good`` maps each path written (or verified on resume) to its global step.
    """

    def __init__(self, trusted: Mapping[Path, int] | None = None) -> None:
        super().__init__()
        self.good: dict[Path, int] = dict(trusted or {})

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        step = int(checkpoint.get("global_step", -1))
        bad = nonfinite_tensors(checkpoint.get("state_dict", {}))
        if bad:
            shown = ", ".join(k.removeprefix("model.") for k in bad[:3])
            more = ", ..." if len(bad) > 3 else ""
            raise TrainingDiverged(
                f"training diverged: {len(bad)} weight or BatchNorm tensors hold NaN or inf "
                f"({shown}{more}) at step {step}, so {path.name} was not written. Stopped; "
                f"{self.kept(path.parent, step)}. Try a lower optim.lr (or another "
                "optim.gamma/schedule) or train.precision 32-true."
            )
        atomic_torch_save(checkpoint, path)
        self.good[path] = step

    def kept(self, out_dir: Path, failed_step: int) -> str:
        """The sentence naming the last good checkpoint in ``out_dir`` after a divergence
        seen with the weights of step ``failed_step``.

        A checkpoint is good when this run wrote (or verified) it and its weights then gave a
        finite loss: its step is below ``failed_step``. One holding the weights of
        ``failed_step`` or later is renamed ``NAME.diverged``, so that neither a resume nor a
        message takes it for a good one.
        """
        moved, good = [], None
        for name in (LAST, BEST):
            path = out_dir / name
            if path not in self.good or not path.is_file():
                continue
            step = self.good[path]
            if step >= failed_step:
                bad = path.with_name(path.name + ".diverged")
                os.replace(path, bad)
                del self.good[path]
                moved.append(f"{name} (step {step}) holds those weights: moved to {bad.name}")
            elif good is None or step > good[1]:
                good = (path, step)
        kept = (
            f"the last good checkpoint is {good[0]} (step {good[1]})"
            if good is not None
            else "no checkpoint verified as good was written by this run"
        )
        return "; ".join([*moved, kept])


def _kept_message(trainer: L.Trainer) -> str:
    """What :class:`SafeCheckpointIO` says is kept after the weights of the current step
    gave a non-finite loss or gradient."""
    io = getattr(trainer.strategy, "checkpoint_io", None)
    if isinstance(io, SafeCheckpointIO):
        return io.kept(Path(trainer.default_root_dir), trainer.global_step)
    return "no checkpoint verified as good was written by this run"


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer that keeps the history on resume.

    Lightning's own deletes ``metrics.csv`` when the folder is not empty. With
    ``keep_before`` (the resumed checkpoint's global step) the rows logged before that step
    are kept (later ones were logged after the checkpoint and will be logged again) and new
    rows are appended under the same header; with ``None`` (a fresh run) the old file goes.
    """

    def __init__(self, log_dir: str, keep_before: int | None) -> None:
        self._keep_before = keep_before
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self._keep_before is None:
            path.unlink()
            return
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = list(reader.fieldnames or [])
        if "step" not in fields:
            path.unlink()
            return

        def step(row: Mapping[str, str]) -> float:
            try:
                return float(row.get("step") or "nan")
            except ValueError:
                return math.nan

        keep = [row for row in rows if step(row) < self._keep_before]
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(keep)
        os.replace(tmp, path)
        self.metrics_keys = fields


class _RunCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives a resume (see :class:`_AppendingWriter`)."""

    def __init__(self, *args: Any, keep_before: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_before = keep_before

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, self._keep_before)
        return self._experiment


LOCK = "train.lock"


@contextlib.contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``out_dir/train.lock`` for the block.

    The file records who holds it (pid, host, start time); a second run on the same folder
    gets :class:`RunFolderBusy` naming them. The kernel drops the lock when the process
    ends, however it ends, so a killed run never leaves the folder locked.
    """
    path = out_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ValueError(
            f"train.out_dir {out_dir}: cannot create {path.name} ({err.strerror}); choose a "
            "writable train.out_dir"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            try:
                info = json.loads(holder)
                who = f"pid {info['pid']} on host {info['host']}, started {info['started']}"
            except (ValueError, KeyError, TypeError):
                who = "a process that did not say who it is"
            raise RunFolderBusy(
                f"train.out_dir {out_dir} is in use by another run ({who}; lock {path}); wait "
                "for it to end or choose another train.out_dir"
            ) from None
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _prepare_out_dir(out: Path) -> None:
    """Create ``train.out_dir``, or refuse it in one line when it cannot be a folder."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"train.out_dir {out} is a file, not a folder; choose another path")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"train.out_dir {out}: {parent} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"train.out_dir {out} cannot be created ({err.strerror}); choose a writable path"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"train.out_dir {out} is not writable; choose another path")


THREADS_FILE_ENV = "DSNTPOSE_THREADS_FILE"


class ThreadsFromFile(L.Callback):
    """Follow a file that holds a thread count: every ``every`` training steps, when the file
    holds a whole number ``n >= 1`` that differs from the current count, call
    ``torch.set_num_threads(n)``. A long CPU run started with ``DSNTPOSE_THREADS_FILE=FILE``
    can so take both cores while the machine is otherwise idle and give one back when other
    work starts (``echo 1 > FILE``), without a restart. A missing or unreadable file changes
    nothing."""

    def __init__(self, path: str | Path, every: int = 20) -> None:
        self.path, self.every = Path(path), int(every)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step % self.every:
            return
        try:
            wanted = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return
        if wanted >= 1 and wanted != torch.get_num_threads():
            torch.set_num_threads(min(wanted, os.cpu_count() or wanted))


class _ProgressBar(TQDMProgressBar):
    """Lightning's progress bar without the logger version (``v_num``): loss and images/s."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


def resolve_precision(run: RunConfig) -> str:
    """Lightning's ``precision`` for ``train.precision``.

    ``auto`` is ``bf16-mixed`` on a CUDA GPU that supports bfloat16, ``16-mixed`` on other CUDA
    GPUs and ``32-true`` elsewhere. ``16-mixed`` needs CUDA (``ValueError`` otherwise).
    """
    t = run.train
    cuda = torch.cuda.is_available() and t.accelerator in ("auto", "gpu", "cuda")
    if t.precision == "auto":
        if not cuda:
            return "32-true"
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if t.precision == "16-mixed" and not cuda:
        raise ValueError(
            "train.precision: '16-mixed' needs a CUDA GPU; on this machine use '32-true' or "
            "'bf16-mixed'"
        )
    if t.precision == "bf16-mixed" and not cuda and not cpu_has_native_bf16():
        warnings.warn(
            "train.precision: 'bf16-mixed' on a CPU without native bfloat16 (AMX or "
            "AVX512-BF16) runs convolutions on slow paths: measured 16x slower than "
            "'32-true' on an AVX2 CPU (benchmarks/precision.py). Use '32-true' here.",
            stacklevel=2,
        )
    return t.precision


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX512-BF16).

    Where it does (e.g. Sapphire Rapids), ``bf16-mixed`` training is ~2-3x faster than
    ``32-true``; where it does not (AVX2-only CPUs), bf16 convolutions fall back to paths
    ~16x slower than float32 (ResNet-18 at 96 px, batch 16, on an AMD EPYC; see
    ``benchmarks/precision.py``).
    """
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def make_trainer(
    run: RunConfig,
    extra_callbacks: Sequence[L.Callback] = (),
    *,
    resumed: tuple[Path, int] | None = None,
    **overrides: Any,
) -> L.Trainer:
    """A Lightning ``Trainer`` for ``run``: devices, precision, DDP, checkpoints and loggers.

    Callbacks: ``best.ckpt`` by ``val/pck`` (max); ``last.ckpt`` every ``train.ckpt_every``
    optimiser steps and at every epoch end; the learning rate; a progress bar with the loss and
    images per second. Loggers: CSV (``logs/csv/metrics.csv``) and TensorBoard
    (``logs/tensorboard``). Samplers are the module's own (:class:`EpochSampler`), so Lightning
    does not replace them. ``extra_callbacks`` are added; ``overrides`` go to ``L.Trainer``
    (the demo uses ``max_time``).

    Checkpoints go through :class:`SafeCheckpointIO` (finite weights only, atomic writes).
    ``resumed`` is ``(checkpoint, global_step)`` of a verified resume point: the CSV log keeps
    its rows before that step and appends (without it a fresh ``metrics.csv`` is started).
    """
    t = run.train
    out = Path(t.out_dir)
    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=out,
            filename=BEST.removesuffix(".ckpt"),
            monitor=MONITOR,
            mode="max",
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        ),
        # last.ckpt at the end of every training epoch (after its validation) ...
        ModelCheckpoint(
            dirpath=out,
            save_last=True,
            save_top_k=0,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        ),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if t.ckpt_every:
        # ... and every ckpt_every steps, so that a killed run loses at most that many steps.
        callbacks.append(
            ModelCheckpoint(
                dirpath=out,
                save_last=True,
                save_top_k=0,
                every_n_train_steps=t.ckpt_every,
                enable_version_counter=False,
            )
        )
    callbacks.extend(extra_callbacks)
    threads_file = os.environ.get(THREADS_FILE_ENV)
    if threads_file:
        callbacks.append(ThreadsFromFile(threads_file))
    if t.progress_bar:
        callbacks.append(_ProgressBar(refresh_rate=max(1, min(20, t.log_every))))
    loggers = [
        _RunCSVLogger(
            out, name="logs", version="csv", keep_before=None if resumed is None else resumed[1]
        ),
        TensorBoardLogger(out, name="logs", version="tensorboard", default_hp_metric=False),
    ]
    options: dict[str, Any] = {
        "max_epochs": t.epochs,
        "accelerator": t.accelerator,
        "devices": t.devices,
        "num_nodes": t.num_nodes,
        "strategy": t.strategy,
        "precision": resolve_precision(run),
        "default_root_dir": out,
        "callbacks": callbacks,
        "logger": loggers,
        "log_every_n_steps": t.log_every,
        "check_val_every_n_epoch": t.val_every,
        "num_sanity_val_steps": 0,
        "deterministic": t.deterministic,
        "use_distributed_sampler": False,
        "enable_progress_bar": t.progress_bar,
        "enable_model_summary": False,
        "plugins": [SafeCheckpointIO(dict([resumed]) if resumed is not None else None)],
    }
    plugins = overrides.pop("plugins", None)
    if plugins:
        options["plugins"] = [*options["plugins"], *plugins]
    options.update(overrides)
    return L.Trainer(**options)


class _DropNoise(logging.Filter):
    """Drops Lightning's advertising tip and its warning that the run folder is not empty
    (config.yaml is written there on purpose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Tip:" not in message and "exists and is not empty" not in message


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Within the block, leave out Lightning's messages that only add noise here.

    One of them warns that resuming mid-epoch with a dataloader that is not resumable "can
    cause unreliable results"; it does not apply, because :class:`EpochSampler` skips the
    indices the checkpoint had already used (see the slow SIGKILL-resume test).
    """
    noise = _DropNoise()
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(noise)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*exists and is not empty")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            warnings.filterwarnings("ignore", message=".*your dataloader is not resumable")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


def check_resume(path: str | Path, run: RunConfig) -> int:
    """Verify the checkpoint at ``path`` before a run continues from it; return its global step.

    Raises ``FileNotFoundError`` when it is missing and ``ValueError`` naming the file when it
    is empty, truncated or unreadable, not a dsntpose training checkpoint, holds NaN/inf
    weights or BatchNorm statistics, or was trained with a different model (every differing
    ``model`` field is named; the initial ``weights`` do not matter when resuming).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    try:
        ckpt = read_torch_file(path, "checkpoint to resume from")
    except ValueError as err:
        raise ValueError(
            f"{err}. Resume from another checkpoint with --resume PATH, or start afresh with "
            "--resume never in a new train.out_dir"
        ) from None
    config = ckpt.get("hyper_parameters", {}).get("config") if isinstance(ckpt, Mapping) else None
    if not isinstance(config, Mapping):
        raise ValueError(f"{path}: not a dsntpose training checkpoint (no hyper_parameters.config)")
    bad = nonfinite_tensors(ckpt.get("state_dict", {}))
    if bad:
        raise ValueError(
            f"{path} holds NaN or inf in {len(bad)} weight tensors ({', '.join(bad[:3])}), so "
            "the run is not resumed from it; resume from an earlier checkpoint with --resume "
            "PATH, or start afresh with --resume never in a new train.out_dir"
        )
    saved = dict(config).get("model", {})
    wanted = run.to_dict()["model"]
    diffs = [
        f"model.{key}: checkpoint {saved.get(key)!r}, config {value!r}"
        for key, value in wanted.items()
        if key != "weights" and saved.get(key, getattr(ModelConfig(), key)) != value
    ]
    if diffs:
        raise ValueError(
            f"{path} was trained with a different model ({'; '.join(diffs)}); "
            f"train into another train.out_dir, or move {path.parent} away to start afresh there"
        )
    return int(ckpt.get("global_step", 0))


def _resume_path(run: RunConfig, resume: str | None) -> Path | None:
    """The checkpoint to resume from: ``auto`` (``out_dir/last.ckpt`` if it exists), ``never``
    (None) or a path."""
    if resume in (None, "never"):
        return None
    if resume == "auto":
        last = run_paths(run.train.out_dir).last
        return last if last.is_file() else None
    return Path(resume)


@dataclass
class FitResult:
    """What :func:`fit` leaves behind.

    Attributes:
        out_dir: the run folder.
        best: ``best.ckpt`` (None if no validation ran).
        last: ``last.ckpt``.
        metrics: the final logged scalars (``val/pck``, ``train/loss``, ...) as floats.
        global_step: optimiser steps taken in all (resumed runs included).
        resumed_from: the checkpoint the run continued, or None.
    """

    out_dir: Path
    best: Path | None
    last: Path | None
    metrics: dict[str, float]
    global_step: int
    resumed_from: Path | None


def _whole(path: Path) -> bool:
    """Whether ``path`` is a complete checkpoint file (its zip directory reads)."""
    from dsntpose.model import check_torch_file

    try:
        check_torch_file(path)
    except (ValueError, OSError):
        return False
    return True


def _set_aside_damaged(path: Path) -> None:
    """Rename a truncated or empty checkpoint (from a full disk before atomic writes) to
    ``NAME.damaged`` so that nothing reports it as a checkpoint; say so on stderr."""
    if path.is_file() and not _whole(path):
        damaged = path.with_name(path.name + ".damaged")
        os.replace(path, damaged)
        print(
            f"dsntpose: {path} was truncated or damaged; moved to {damaged.name}", file=sys.stderr
        )


def save_config(run: RunConfig, path: str | Path) -> Path:
    """Write ``run`` as YAML (the format ``--config`` reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(run.to_dict(), sort_keys=False))
    return path


def fit(
    run: RunConfig,
    *,
    resume: str | None = "auto",
    extra_callbacks: Sequence[L.Callback] = (),
    **trainer_overrides: Any,
) -> FitResult:
    """Train ``run`` to ``train.epochs`` epochs, saving into ``train.out_dir``.

    Args:
        run: the complete run config.
        resume: ``"auto"`` continues from ``out_dir/last.ckpt`` when it exists (a stopped or
            killed run picks up where it was), ``"never"`` starts afresh, or a checkpoint path.
        extra_callbacks: Lightning callbacks added to the usual ones.
        trainer_overrides: extra ``L.Trainer`` arguments (``max_time``, ...).

    Raises:
        ValueError: the resume checkpoint holds a different model (the fields are named).
        FileNotFoundError: data, the named checkpoint or ``train.init_from`` is missing.
        TrainingDiverged: a non-finite loss, gradient, weight or BatchNorm statistic; no
            checkpoint with non-finite tensors is ever written, and the message names the
            last one this run verified.
        RunFolderBusy: another run holds ``train.out_dir`` (its pid, host and start time).
    """
    out = Path(run.train.out_dir)
    paths = run_paths(out)
    if run.data.dataset != "synthetic":
        require_root(run)  # fail before anything starts
    if run.train.init_from is not None:
        checkpoint_path(run.train.init_from)
    _prepare_out_dir(out)
    rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")) or 0)
    lock = run_lock(out) if rank == 0 else contextlib.nullcontext()
    with lock:  # held for the whole fit: one run per folder
        ckpt = _resume_path(run, resume)
        resumed: tuple[Path, int] | None = None
        if ckpt is not None:
            resumed = (ckpt, check_resume(ckpt, run))
        elif resume == "never" and paths.last.is_file():
            raise ValueError(
                f"train.out_dir {out} already holds a run ({LAST}); resume it (--resume auto), "
                "or choose another train.out_dir"
            )
        _set_aside_damaged(paths.best)
        L.seed_everything(run.train.seed, workers=True, verbose=False)
        module = PoseModule(run.to_dict(), initialise=ckpt is None)
        with _quiet_lightning():
            trainer = make_trainer(run, extra_callbacks, resumed=resumed, **trainer_overrides)
            if trainer.is_global_zero:
                save_config(run, paths.config)
            trainer.fit(module, ckpt_path=ckpt)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best, last = paths.best, paths.last
    return FitResult(
        out_dir=out,
        best=best if _whole(best) else None,
        last=last if _whole(last) else None,
        metrics=metrics,
        global_step=trainer.global_step,
        resumed_from=ckpt,
    )
