"""The LightningModule: what one training step and one validation do.

:class:`EpochSampler` fixes the order of the samples by ``(seed, epoch, rank)`` (the data sets
come from :mod:`dsntpose.datasets`); :class:`PoseModule` runs the network, scores the head's
loss in float32 and validates in original image pixels; :func:`lr_factor` is the cosine
schedule; :func:`load_initial_weights` is fine-tuning's start (``train.init_from``).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from dsntpose.checkpoint import (
    AVERAGE_PREFIX,
    STATE_PREFIX,
    checkpoint_path,
    load_checkpoint,
    state_problems,
)
from dsntpose.config import ModelConfig, OptimConfig, RunConfig
from dsntpose.data import get_joint_set, worker_init_fn
from dsntpose.datasets import build_datasets
from dsntpose.evaluate import PCKResult, protocol_for
from dsntpose.heads import HeadOutput, PresenceHead
from dsntpose.inference import predict_batch
from dsntpose.metrics import PCKMetric
from dsntpose.model import build_model, model_name
from dsntpose.ops import normalized_to_pixel
from dsntpose.training.averaging import WeightAverage
from dsntpose.training.run_folder import MONITOR, TrainingDiverged, _kept_message, run_paths

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

    ``start(num_indices) -> (epoch, indices to skip)``, when given, is asked once, when the
    first pass begins: the position of a resumed run is known only after Lightning has
    restored its loop state, which comes after the loader is built when the cosine schedule
    asks for the number of steps (``estimated_stepping_batches``) in ``configure_optimizers``.
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
        start: Callable[[int], tuple[int, int]] | None = None,
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
        self._start = start
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
        order: list[int]
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n).tolist()
        else:
            order = list(range(n))
        if self.pad:
            total = math.ceil(n / world) * world
            order += (order * math.ceil(total / n))[: total - n]
        return order[self.rank :: world]

    def __iter__(self) -> Iterator[int]:
        if self._start is not None:
            start, self._start = self._start, None
            epoch, skip = start(len(self))
            self.set_epoch(epoch)
            self.skip(skip)
        order = self.indices()[self._skip :]
        self._skip = 0
        return iter(order)

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.num_samples / self.world_size)
        return len(range(self.rank, self.num_samples, self.world_size))


def check_subsets(run: RunConfig, train_size: int, val_size: int) -> None:
    """Refuse ``data.train_subset`` / ``data.val_subset`` above the size of the set they cut
    (a run asking for more samples than there are would silently train on fewer)."""
    for key, size in (("train_subset", train_size), ("val_subset", val_size)):
        value = getattr(run.data, key)
        if value is not None and value > size:
            split = "training" if key == "train_subset" else "validation"
            raise ValueError(
                f"data.{key}: {value} is more than the {size} {split} samples of data.dataset "
                f"{run.data.dataset!r}; use at most {size} (or leave it unset for all)"
            )


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
    # the global MT19937's legacy tuple (numpy's stubs promise a dict), saved for resume
    state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())  # noqa: NPY002
    name, keys, pos, has_gauss, cached = state
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": list(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
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
    With ``train.ema_decay`` the module also keeps ``self.ema``
    (:class:`~dsntpose.training.averaging.WeightAverage`), updated after every optimiser step;
    validation then scores the average as ``val/pck`` and the raw weights as ``val/pck_raw``.
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
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # the average starts from the initial weights (init_from's, when given)
        decay = self.cfg.train.ema_decay
        self.ema = WeightAverage(self.model, decay) if decay is not None else None
        self.joint_set = get_joint_set(self.cfg.model.joints)
        protocol = protocol_for(self.cfg.data.dataset)
        self.val_pck, self.val_pck_raw = (
            PCKMetric(
                self.joint_set.num_joints,
                threshold=protocol.threshold,
                total_joints=self.joint_set.pck_total,
            )
            for _ in range(2)
        )
        self.train_set: Dataset[dict[str, Any]] | None = None
        self.val_set: Dataset[dict[str, Any]] | None = None
        self._vis: dict[str, Tensor] | None = None
        self._presence_scores: list[tuple[Tensor, ...]] = []
        self._num_validations = 0
        self._step_end: float | None = None
        self._ips: float | None = None
        self.last_result: PCKResult | None = None
        self._resumed_optim: dict[str, Any] | None = None

    def forward(self, images: Tensor) -> HeadOutput:
        """``images`` ``(B, 3, S, S)`` RGB in ``[0, 1]`` -> the model's ``HeadOutput``."""
        out: HeadOutput = self.model(images)
        return out

    # ---- data ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        if self.train_set is None:
            self.train_set, self.val_set = build_datasets(self.cfg)
            check_subsets(self.cfg, len(self.train_set), len(self.val_set))  # type: ignore[arg-type]

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
        # a _ProcessedTracker, which Lightning annotates as its base without ``processed``
        processed: int = progress.processed  # type: ignore[attr-defined]
        done = progress.completed + int(processed > progress.completed)
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
            epoch=trainer.current_epoch,
            start=self._start_indices,
        )
        return self._loader(self.train_set, sampler)

    def _start_indices(self, num_indices: int) -> tuple[int, int]:
        """``(epoch, indices to skip)`` for the sampler's first pass, read when it begins
        (after Lightning restored the loop state of a resumed run)."""
        batch = self.cfg.data.batch_size
        epoch, skip = self._start_position(math.ceil(num_indices / batch))
        return epoch, skip * batch

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

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimiser's step, then the weight average's (before any checkpoint of this
        step is written, so a run resumed from it averages exactly as one that went on)."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.model)

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

    def _score(
        self, network: nn.Module, metric: PCKMetric, batch: Mapping[str, Tensor], images: Tensor
    ) -> tuple[HeadOutput, Tensor]:
        """Run ``network`` on a validation batch, add its predictions to ``metric``; return its
        output and the crop coordinates it predicted."""
        out = network(images)
        coords, image_px, _ = predict_batch(
            network,
            {**batch, "image": images},
            self.joint_set,
            flip=self.cfg.train.flip_test,
            output=_float32(out),
        )
        metric.update(
            image_px.to(batch["joints_image"].device),
            batch["joints_image"],
            ~batch["joints_missing"].bool(),
            batch["norm_size"],
        )
        return out, coords

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        images = self._images(batch)
        network = self.model if self.ema is None else self.ema.network
        out, coords = self._score(network, self.val_pck, batch, images)
        if self.ema is not None:
            self._score(self.model, self.val_pck_raw, batch, images)
        self.log(
            "val/loss",
            self._loss(out, batch),
            on_epoch=True,
            sync_dist=True,
            batch_size=len(images),
        )
        if out.presence is not None and out.visibility is not None and "presence" in batch:
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

    def _result(self, metric: PCKMetric) -> PCKResult:
        """``metric``'s counts summed over all devices, as a result; the metric is reset."""
        with metric.sync_context():
            correct = metric.correct.cpu().numpy().copy()
            counts = metric.total.cpu().numpy().copy()
        metric.reset()
        protocol = protocol_for(self.cfg.data.dataset)
        return PCKResult(protocol.metric, protocol.threshold, self.joint_set, correct, counts)

    def on_validation_epoch_end(self) -> None:
        result = self._result(self.val_pck)
        self.last_result = result
        self.log(MONITOR, result.total)
        extra = self._presence_metrics()
        if self.ema is not None:  # the raw weights, scored in the same pass
            extra["pck_raw"] = self._result(self.val_pck_raw).total
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

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        o = self.cfg.optim
        # two groups, logged as lr-<Optimizer>/head and /backbone: the backbone's parameters at
        # optim.backbone_lr_ratio, every other one (the head, the presence and visibility heads,
        # the upsampling decoder) at optim.lr
        backbone = [p for n, p in self.model.named_parameters() if n.startswith("backbone.")]
        rest = [p for n, p in self.model.named_parameters() if not n.startswith("backbone.")]
        groups: list[dict[str, Any]] = [
            {"params": rest, "lr": o.lr, "name": "head"},
            {"params": backbone, "lr": o.lr * o.backbone_lr_ratio, "name": "backbone"},
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
            total = self._schedule_steps()
            stop = min(total, self.cfg.train.max_steps or total)
            if o.warmup_steps >= stop and self.trainer.is_global_zero:
                print(
                    f"dsntpose: warning: optim.warmup_steps {o.warmup_steps} is not shorter than "
                    f"the run ({stop} optimiser steps): the learning rate never reaches "
                    "optim.lr; lower optim.warmup_steps",
                    file=sys.stderr,
                )
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

    def _schedule_steps(self) -> int:
        """The optimiser steps of ``train.epochs`` (the cosine schedule's span). A
        ``train.max_steps`` stops the run earlier but does not shorten the schedule, so a run
        stopped there and resumed without it is the uninterrupted run."""
        trainer = self.trainer
        estimate = max(1, int(trainer.estimated_stepping_batches))  # builds the loader
        if trainer.max_steps == -1:
            return estimate
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            return estimate
        per_epoch = math.ceil(int(batches) / trainer.accumulate_grad_batches)
        return max(1, per_epoch * max(1, int(trainer.max_epochs or 1)))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = _rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:
            _set_rng_states(checkpoint["rng_states"])
        _match_average(checkpoint.get("state_dict"), self.ema)
        for state in checkpoint.get("optimizer_states", []):
            upgrade_optimizer_state(state, self.model)
        config = checkpoint.get("hyper_parameters", {}).get("config", {})
        saved = config.get("optim") if isinstance(config, Mapping) else None
        self._resumed_optim = dict(saved) if isinstance(saved, Mapping) else None

    def on_train_start(self) -> None:
        """A resumed run whose ``optim`` section changed (``check_resume`` refused a change of
        optimiser or schedule, and said which settings are applied): the restored optimiser
        and scheduler take the new learning rates, weight decay, milestones and gamma."""
        saved = getattr(self, "_resumed_optim", None)
        self._resumed_optim = None
        if saved is None or not optim_changes(saved, self.cfg.optim):
            return
        apply_optim(self.cfg.optim, self.trainer)


def _match_average(state: dict[str, Any] | None, ema: WeightAverage | None) -> None:
    """Make a checkpoint's state_dict fit a module with (or without) a weight average, in
    place: a run that turns ``train.ema_decay`` on when resumed starts its average from the
    checkpoint's weights; one that turns it off drops the saved average."""
    if state is None:
        return
    saved = [key for key in state if key.startswith("ema.")]
    if ema is None:
        for key in saved:
            del state[key]
    elif not saved:
        for key, value in list(state.items()):
            if key.startswith(STATE_PREFIX):
                state[AVERAGE_PREFIX + key.removeprefix(STATE_PREFIX)] = value.clone()
        state["ema.updates"] = torch.zeros((), dtype=torch.long)


def upgrade_optimizer_state(state: dict[str, Any], model: nn.Module) -> None:
    """Rewrite in place an optimiser state saved before the head group held every
    non-backbone parameter (its head group held ``model.head``'s alone, so the presence and
    visibility heads never trained): the missing parameters join the head group with no
    state (the optimiser starts theirs afresh) and the backbone's indices move past them.

    ``state`` is a ``torch.optim.Optimizer.state_dict()`` of :meth:`PoseModule.configure_optimizers`
    (groups head then backbone); any other layout is left as it is, for the optimiser's own
    check to judge."""
    groups = state.get("param_groups")
    named = list(model.named_parameters())
    backbone = sum(1 for n, _ in named if n.startswith("backbone."))
    head = len(named) - backbone
    old_head = sum(1 for n, _ in named if n.startswith("head."))
    if (
        not isinstance(groups, list)
        or len(groups) != 2
        or [g.get("name") for g in groups] != ["head", "backbone"]
        or [len(g["params"]) for g in groups] != [old_head, backbone]
        or old_head == head
    ):
        return
    shift = head - old_head
    moved = {index: index + shift for index in groups[1]["params"]}
    groups[0]["params"] = list(groups[0]["params"]) + list(range(old_head, head))
    groups[1]["params"] = [moved[index] for index in groups[1]["params"]]
    per_param = state.get("state", {})
    state["state"] = {moved.get(index, index): value for index, value in per_param.items()}


APPLIED_ON_RESUME = (
    "lr",
    "weight_decay",
    "milestones",
    "gamma",
    "warmup_steps",
    "min_lr_ratio",
    "backbone_lr_ratio",
)
"""The ``optim`` settings a resumed run takes from its new config (the others, ``optimizer``
and ``schedule``, change the optimiser state itself: a resume with another one is refused)."""


def optim_changes(saved: Mapping[str, Any], optim: OptimConfig) -> dict[str, tuple[Any, Any]]:
    """``key -> (checkpoint's value, config's value)`` for every ``optim`` setting that differs
    between a checkpoint's run config section ``saved`` and ``optim``."""
    default = OptimConfig()
    changes = {}
    for key, value in vars(optim).items():
        old = saved.get(key, getattr(default, key))
        if key == "milestones":
            old = [int(m) for m in old]
        if old != value:
            changes[key] = (old, value)
    return changes


def apply_optim(o: OptimConfig, trainer: L.Trainer) -> None:
    """Set the restored optimiser's and scheduler's rates to those of ``o`` at the current
    step (what a run started with ``o`` would use there)."""
    import bisect
    from collections import Counter

    optimizer = trainer.optimizers[0]
    configs = trainer.lr_scheduler_configs
    scheduler = configs[0].scheduler if configs else None
    bases = []
    for group in optimizer.param_groups:
        base = o.lr * (o.backbone_lr_ratio if group.get("name") == "backbone" else 1.0)
        group["initial_lr"] = base
        group["weight_decay"] = o.weight_decay
        bases.append(base)
    if scheduler is None:
        for group, base in zip(optimizer.param_groups, bases):
            group["lr"] = base
        return
    scheduler.base_lrs = list(bases)
    step = scheduler.last_epoch
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        scheduler.milestones = Counter(o.milestones)
        scheduler.gamma = o.gamma
        lrs = [b * o.gamma ** bisect.bisect_right(o.milestones, step) for b in bases]
    elif isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        scheduler.lr_lambdas = [
            partial(lr_factor, optim=o, total_steps=fn.keywords["total_steps"])
            if isinstance(fn, partial)
            else fn
            for fn in scheduler.lr_lambdas
        ]
        lrs = [b * fn(step) for b, fn in zip(bases, scheduler.lr_lambdas)]
    else:
        lrs = bases
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)  # what get_last_lr() and the LR monitor report


def load_initial_weights(model: nn.Module, cfg: ModelConfig, path: str | Path) -> ModelConfig:
    """Fine-tuning's start: copy every tensor of a trained network into ``model``.

    The backbone must be the same network. The head may predict another joint set: its
    per-joint tensors are carried over **by joint name** (:func:`dsntpose.data.joints.joint_map`:
    an LSP model starts MPII's upper_neck from its neck; pelvis and thorax keep their fresh
    initialisation). Presence and visibility heads (``model.presence``) and an upsampling
    decoder (``model.upsample``) that the trained network lacks keep their fresh
    initialisation too (the decoder's starts as the plain upsampling of the trained maps).

    Args:
        model: the freshly built network of ``cfg`` (:func:`~dsntpose.model.build_model`).
        cfg: its configuration.
        path: a dsntpose checkpoint (a training run's ``best.ckpt``, a :func:`save_model` file
            or a shipped model).

    Returns:
        The checkpoint's :class:`~dsntpose.config.ModelConfig`.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_checkpoint`; and a ``ValueError`` naming
            both networks when the checkpoint's does not fit ``model`` (another backbone,
            stride or head).
    """
    from dsntpose.data.joints import get_joint_set, joint_map

    trained, trained_cfg, _ = load_checkpoint(path)
    state = dict(trained.state_dict())
    own = model.state_dict()
    if trained_cfg.joints != cfg.joints:
        mapping = joint_map(get_joint_set(trained_cfg.joints), get_joint_set(cfg.joints))
        pairs = [(dst, src) for dst, src in enumerate(mapping) if src >= 0]
        for key, value in list(state.items()):
            mine = own.get(key)
            joint_tensor = (
                key.startswith(("head.", "decoder.out.", "decoder.finer.out."))
                and mine is not None
                and value.dim() >= 1
                and value.shape[0] == trained_cfg.num_joints
                and mine.shape[0] == cfg.num_joints
                and value.shape[1:] == mine.shape[1:]
            )
            if joint_tensor and pairs and mine is not None:  # (in joint_tensor; again for mypy)
                merged = mine.clone()
                dst, src = zip(*pairs)
                merged[list(dst)] = value[list(src)].to(merged.dtype)
                state[key] = merged
    for key, value in own.items():
        if key.startswith(("presence.", "decoder.")) and key not in state:
            state[key] = value
    presence = getattr(model, "presence", None)
    if isinstance(presence, PresenceHead):  # an earlier calibration layout
        presence.upgrade_state(state, "presence.")
    problems = state_problems(model, state, cfg)
    if problems:
        raise ValueError(
            f"train.init_from: {path} holds a {model_name(trained_cfg)} network for "
            f"{trained_cfg.joints} joints, which does not fit model {model_name(cfg)} for "
            f"{cfg.joints} joints: {'; '.join(problems[:2])}"
        )
    model.load_state_dict(state)
    return trained_cfg
