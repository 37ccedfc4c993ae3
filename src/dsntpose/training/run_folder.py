"""Run-folder operations: the files of a run, its lock, safe checkpoint writes, resume checks.

Everything here acts on ``train.out_dir`` and nothing here trains: :func:`run_paths` names
every file of a run folder, :func:`run_lock` keeps one run per folder, :class:`SafeCheckpointIO`
writes Lightning's checkpoints finite-only and atomically
(:func:`dsntpose.checkpoint.atomic_torch_save`), :func:`check_resume` verifies a checkpoint
before a run continues from it, a truncated checkpoint is set aside
(:func:`_set_aside_damaged`), the CSV log keeps its history across a resume
(:class:`_RunCSVLogger`) and :func:`resolve_precision` picks Lightning's precision (probing the
CPU for native bfloat16).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dsntpose.checkpoint import (
    atomic_torch_save,
    atomic_write,
    check_torch_file,
    clean_stale_temporaries,
    nonfinite_tensors,
    read_torch_file,
)
from dsntpose.config import ModelConfig, RunConfig

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


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made safe for the run folder.

    Before a checkpoint is written, every floating-point tensor of its ``state_dict`` (the
    weights and the BatchNorm buffers) must be finite: otherwise nothing is written and the
    run stops with :class:`TrainingDiverged` (a checkpoint is never poisoned). The file is
    written atomically on its own filesystem (:func:`dsntpose.checkpoint.atomic_torch_save`:
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
    paths = run_paths(out)
    marks = (out / LOCK, paths.last, paths.best, paths.csv_dir, paths.val_metrics)
    if paths.config.exists() and not any(mark.exists() for mark in marks):
        raise ValueError(
            f"train.out_dir {out} holds a config.yaml but is not a dsntpose run folder (no "
            f"{LOCK}, {LAST} or logs/ beside it): training there would overwrite it; choose "
            "another train.out_dir"
        )
    removed = clean_stale_temporaries(out)
    if removed:
        print(
            f"dsntpose: removed {len(removed)} temporary files of killed runs from {out} "
            f"({', '.join(p.name for p in removed[:3])})",
            file=sys.stderr,
        )


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
    step = int(ckpt.get("global_step", 0))
    from dsntpose.training.module import optim_changes

    changes = optim_changes(dict(config).get("optim") or {}, run.optim)
    fixed = [key for key in changes if key in ("optimizer", "schedule")]
    if fixed:
        key = fixed[0]
        old, new = changes[key]
        raise ValueError(
            f"optim.{key}: the config says {new!r} but {path} was trained with {old!r}, whose "
            f"optimiser state does not carry over; resume with optim.{key} {old!r}, or train "
            "into another train.out_dir"
        )
    _say_changes(path, step, "optimiser", {f"optim.{k}": v for k, v in changes.items()})
    _say_changes(path, step, "data or loss", recipe_changes(config, run))
    return step


def _say_changes(path: Path, step: int, what: str, changes: dict[str, tuple[Any, Any]]) -> None:
    """One stderr line naming each ``key -> (old, new)`` a resumed run changes (none: silent)."""
    if changes:
        said = ", ".join(f"{k} {new!r} (was {old!r})" for k, (old, new) in changes.items())
        print(
            f"dsntpose: resuming {path} at step {step} with changed {what} settings, "
            f"applied from this step: {said}",
            file=sys.stderr,
        )


# where the data lives and how it is loaded: a resumed run may move or re-thread freely
_WHERE = {"root", "image_root", "lspet_root", "mpii_crops_root", "coco_root", "num_workers"}


def recipe_changes(saved: Mapping[str, Any], run: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``"section.key" -> (checkpoint's value, config's value)`` for every ``data`` and
    ``loss`` setting that differs between a checkpoint's run config ``saved`` and ``run``
    (not the data's folders or loader workers): what a resumed run trains differently from
    the step it resumes at (the recipe file edited, an override added or dropped)."""
    now = run.to_dict()
    defaults = RunConfig().to_dict()
    changes: dict[str, tuple[Any, Any]] = {}
    for section in ("data", "loss"):
        old_section = dict(saved.get(section) or {})
        for key, value in now[section].items():
            if section == "data" and key in _WHERE:
                continue
            old = old_section.get(key, defaults[section].get(key))
            if old != value:
                changes[f"{section}.{key}"] = (old, value)
    return changes


def _resume_path(run: RunConfig, resume: str | None) -> Path | None:
    """The checkpoint to resume from: ``auto`` (``out_dir/last.ckpt`` if it exists), ``never``
    (None) or a path."""
    if resume in (None, "never"):
        return None
    if resume == "auto":
        last = run_paths(run.train.out_dir).last
        return last if last.is_file() else None
    return Path(resume)


def _whole(path: Path) -> bool:
    """Whether ``path`` is a complete checkpoint file (its zip directory reads)."""
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
    text = yaml.safe_dump(run.to_dict(), sort_keys=False)
    return atomic_write(path, lambda tmp: tmp.write_text(text), what="config")
