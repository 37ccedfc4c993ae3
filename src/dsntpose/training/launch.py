"""Launching a run: the Lightning ``Trainer`` and :func:`fit`, which only orchestrates.

:func:`fit` checks the data and the resume point, takes the run folder's lock, builds the
:class:`~dsntpose.training.module.PoseModule` and the trainer (:func:`make_trainer`) and runs
it; the steps themselves live in :mod:`dsntpose.training.module`, the run folder's files in
:mod:`dsntpose.training.run_folder`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dsntpose.checkpoint import checkpoint_path
from dsntpose.config import RunConfig
from dsntpose.datasets import require_root
from dsntpose.training.module import PoseModule
from dsntpose.training.run_folder import (
    BEST,
    LAST,
    MONITOR,
    SafeCheckpointIO,
    _prepare_out_dir,
    _resume_path,
    _RunCSVLogger,
    _set_aside_damaged,
    _whole,
    check_resume,
    resolve_precision,
    run_lock,
    run_paths,
    save_config,
)

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


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; the message says what was saved and the command that resumes."""


class _SaveOnInterrupt(L.Callback):
    """On Ctrl-C or SIGTERM (``kill``, a scheduler's stop, a background job's only way to be
    stopped: bash starts those with SIGINT ignored), save ``last.ckpt`` (through the safe
    writer) before Lightning shuts down, so the steps since the last checkpoint are not lost;
    ``saved`` is its step, or None. (Lightning turns SIGTERM into a ``SIGTERMException`` at the
    end of the running batch.)"""

    def __init__(self) -> None:
        self.saved: int | None = None
        self.error: str | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        stop = isinstance(exception, (KeyboardInterrupt, SIGTERMException))
        if not stop or not trainer.is_global_zero:
            return
        if trainer.global_step == 0 or trainer.state.fn != "fit":
            return
        try:
            trainer.save_checkpoint(Path(trainer.default_root_dir) / LAST)
            self.saved = trainer.global_step
        except Exception as err:  # a diverged or unwritable state: say so, keep the old file
            self.error = str(err).splitlines()[0] if str(err) else type(err).__name__


def _multi_node_launcher() -> bool:
    """Whether a launcher (torchrun, SLURM, ...) set up the processes of a multi-node run."""
    names = ("WORLD_SIZE", "MASTER_ADDR", "SLURM_NTASKS", "NODE_RANK", "LOCAL_RANK", "GROUP_RANK")
    return any(name in os.environ for name in names)


class _ProgressBar(TQDMProgressBar):
    """Lightning's progress bar without the logger version (``v_num``): loss and images/s."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


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
    callbacks.append(_SaveOnInterrupt())
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
        "max_steps": -1 if t.max_steps is None else t.max_steps,
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


def _interrupted(saver: _SaveOnInterrupt, last: Path, config: Path) -> str:
    """The line Ctrl-C ends with: what was saved, and the command that resumes the run."""
    resume = f"resume with: dsntpose train --config {config}"
    if saver.saved is not None:
        return f"interrupted: {last} saved at step {saver.saved}; {resume}"
    if saver.error is not None:
        return f"interrupted: {last} could not be saved ({saver.error}); {resume}"
    if last.is_file():
        return f"interrupted before any new step was saved; {last} is kept; {resume}"
    return "interrupted before the first step: nothing to resume"


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
    if run.train.num_nodes > 1 and not _multi_node_launcher():
        raise ValueError(
            f"train.num_nodes {run.train.num_nodes}: a run on several machines is started on "
            "each of them by a launcher (torchrun --nnodes, or SLURM srun), which sets "
            "WORLD_SIZE/MASTER_ADDR; none is set here, so the run would wait forever for the "
            "other nodes. Use train.num_nodes 1, or start it with a launcher"
        )
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
            try:
                trainer.fit(module, ckpt_path=ckpt)
            except SystemExit as stop:  # Lightning's answer to Ctrl-C: sys.exit(1)
                callbacks: list[L.Callback] = trainer.callbacks  # type: ignore[attr-defined]
                interrupt = next((c for c in callbacks if isinstance(c, _SaveOnInterrupt)), None)
                if trainer.state.status != "interrupted" or interrupt is None:
                    raise
                signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignored it
                raise TrainingInterrupted(_interrupted(interrupt, paths.last, paths.config)) from (
                    stop
                )
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
