"""Training with Lightning: the one package that imports it.

Read in this order: :mod:`~dsntpose.training.module` (where the samples come from,
:class:`EpochSampler`; what one step does, :class:`PoseModule`: forward, the head's loss in
float32, validation PCK in original image pixels), :mod:`~dsntpose.training.run_folder` (the
files of a run folder, its lock, safe checkpoint writes, resume checks) and
:mod:`~dsntpose.training.launch` (:func:`make_trainer`, and :func:`fit`, which only
orchestrates). Lightning carries devices, precision, DDP, checkpoints, logs and progress bars.

A run folder (``train.out_dir``) holds::

    config.yaml        the resolved RunConfig: `dsntpose train --config DIR/config.yaml` repeats it
    last.ckpt          saved every `train.ckpt_every` steps and at every epoch end (resume point)
    best.ckpt          the best validation PCK so far
    val_metrics.json   the latest validation table (PCK per group, joint counts)
    logs/csv/metrics.csv, logs/tensorboard/   scalars (loss, PCK, learning rate, images/s)
    vis/epoch_NNN.png  a grid of validation predictions every `train.vis_every` validations

Checkpoints are Lightning checkpoints: ``hyper_parameters["config"]`` is the full run config as
plain dicts and the network is the module attribute ``model`` (``state_dict`` keys ``model.*``),
which is what :func:`dsntpose.checkpoint.load_checkpoint` reads.

Reproducibility and resume: the sampling order depends only on ``(seed, epoch, rank)`` and the
augmentation only on ``(seed, epoch, index)``, never on a global generator, so a run resumed
from ``last.ckpt`` sees exactly the samples the uninterrupted run would have seen, also when it
was killed in the middle of an epoch (the sampler skips the batches already trained on).
Optimiser, scheduler, step counters and the global RNG states are in the checkpoint.
"""

from dsntpose.datasets import build_datasets
from dsntpose.training.launch import (
    THREADS_FILE_ENV,
    FitResult,
    ThreadsFromFile,
    TrainingInterrupted,
    fit,
    make_trainer,
)
from dsntpose.training.module import (
    EpochSampler,
    PoseModule,
    load_initial_weights,
    lr_factor,
)
from dsntpose.training.run_folder import (
    BEST,
    LAST,
    MONITOR,
    RunFolderBusy,
    RunPaths,
    SafeCheckpointIO,
    TrainingDiverged,
    check_resume,
    cpu_has_native_bf16,
    resolve_precision,
    run_lock,
    run_paths,
    save_config,
)

__all__ = [
    "BEST",
    "LAST",
    "MONITOR",
    "THREADS_FILE_ENV",
    "EpochSampler",
    "FitResult",
    "PoseModule",
    "RunFolderBusy",
    "RunPaths",
    "SafeCheckpointIO",
    "ThreadsFromFile",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_datasets",
    "check_resume",
    "cpu_has_native_bf16",
    "fit",
    "load_initial_weights",
    "lr_factor",
    "make_trainer",
    "resolve_precision",
    "run_lock",
    "run_paths",
    "save_config",
]
