"""Slow training cases: a run killed with SIGKILL and resumed, and DDP on two CPU processes.

Both drive the real command line in subprocesses (``python -m dsntpose.cli train`` and
``torchrun``), so each pays for its own Lightning import.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = pytest.mark.slow

STEPS_PER_EPOCH = 8  # 64 training samples, batch 8


def write_config(path: Path, out_dir: Path, **train: object) -> Path:
    values = {
        "model": {"backbone": "resnet18", "output_stride": 32, "input_size": 64, "joints": "lsp"},
        "data": {
            "dataset": "synthetic",
            "synthetic_train": 64,
            "synthetic_val": 24,
            "batch_size": 8,
            "num_workers": 1,
        },
        "optim": {"optimizer": "adam", "lr": 1e-3, "milestones": [2]},
        "train": {
            "epochs": 3,
            "out_dir": str(out_dir),
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "log_every": 1,
            "vis_every": 0,
            "ckpt_every": 1,
            "progress_bar": False,
            **train,
        },
    }
    path.write_text(yaml.safe_dump(values))
    return path


def train_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dsntpose.cli", "train", "--config", str(config), *extra]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    total = 3 * STEPS_PER_EPOCH
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    config = write_config(tmp_path / "killed.yaml", killed_dir)

    proc = subprocess.Popen(
        train_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    last = killed_dir / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let it run on a little: the kill lands wherever training is
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    saved_step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 1 <= saved_step < total

    resumed = subprocess.run(train_command(config), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == total  # the step count continued from saved_step

    straight = subprocess.run(
        train_command(write_config(tmp_path / "straight.yaml", straight_dir)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert straight.returncode == 0, straight.stderr[-2000:]
    # Same samples in the same order with the same augmentation, optimiser state restored:
    # the resumed weights equal the uninterrupted run's exactly, wherever the kill landed.
    a, b = final["state_dict"], weights(straight_dir / "last.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs (killed at step {saved_step})"


def test_ddp_on_two_cpu_processes_agrees_and_sums_validation(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip("torchrun not installed beside this python")
    out = tmp_path / "ddp"
    config = write_config(
        tmp_path / "ddp.yaml", out, epochs=1, devices=2, strategy="ddp", ckpt_every=0
    )
    script = tmp_path / "ddp_fit.py"
    script.write_text(
        "import sys, torch\n"
        "import lightning as L\n"
        "from dsntpose.config import load_config\n"
        "from dsntpose.training import fit\n"
        "class Dump(L.Callback):\n"
        "    def on_train_end(self, trainer, pl_module):\n"
        "        state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}\n"
        "        torch.save(state, f'{sys.argv[2]}/rank{trainer.global_rank}.pt')\n"
        "run = load_config(sys.argv[1])\n"
        "fit(run, resume='never', extra_callbacks=[Dump()])\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(config),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for key, value in rank0.items():
        if "running_" in key or "num_batches_tracked" in key:
            continue  # BatchNorm statistics are per process (no SyncBatchNorm)
        assert torch.equal(value, rank1[key]), key
    # Each rank validated half of the 24 samples; the table counts all of them once.
    record = json.loads((out / "val_metrics.json").read_text())
    from dsntpose.config import load_config
    from dsntpose.datasets import build_datasets

    _, val = build_datasets(load_config(config))
    labelled = sum(int((~val[i]["joints_missing"]).sum()) for i in range(len(val)))
    assert sum(record["counts"].values()) == labelled
    # and every rank took STEPS_PER_EPOCH / 2 steps on its half of the training set
    assert torch.load(out / "last.ckpt", weights_only=True)["global_step"] == STEPS_PER_EPOCH // 2
