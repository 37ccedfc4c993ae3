"""scripts/cells_queue.sh: sweeps run one after another, each sweep's pid where the reship
pauses it, and a stopped sweep stops the queue (no later sweep starts in its place)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# stands for .venv/bin/python: logs the sweep it was given, then runs for SLEEP seconds
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$3 $DSNTPOSE_RUNS $OMP_NUM_THREADS" >> "$QUEUE_LOG"
exec sleep "${SLEEP:-0}"
"""


def queue(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "repo"
    (work / "scripts").mkdir(parents=True)
    (work / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "cells_queue.sh", work / "scripts")
    python = work / ".venv" / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    runs = tmp_path / "runs"
    runs.mkdir()
    return work, runs


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def run(work: Path, runs: Path, *args: str, sleep: float = 0.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "QUEUE_LOG": str(runs / "queue.log"), "SLEEP": str(sleep),
           "DATA": str(runs)}  # fmt: skip
    return subprocess.run(
        ["bash", str(work / "scripts" / "cells_queue.sh"), *args],
        env=env, capture_output=True, text=True,
    )  # fmt: skip


def test_sweeps_run_in_order_and_the_queue_cleans_up(tmp_path) -> None:
    work, runs = queue(tmp_path)
    done = run(work, runs, str(runs), "pc", "pa", "pf")
    assert done.returncode == 0 and "started queue pid" in done.stdout
    wait_for(lambda: not (runs / "cells_queue.pid").exists())
    lines = (runs / "queue.log").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["pc", "pa", "pf"]
    assert all(line.split()[1:] == [str(runs / "experiments"), "1"] for line in lines)
    assert not (runs / "cells.pid").exists()


def test_a_stopped_sweep_stops_the_queue(tmp_path) -> None:
    work, runs = queue(tmp_path)
    assert run(work, runs, str(runs), "pc", "pa", sleep=30).returncode == 0
    wait_for(lambda: (runs / "cells.pid").exists() and (runs / "queue.log").exists())
    again = run(work, runs, str(runs), "pc")  # one queue at a time
    assert again.returncode == 0 and again.stdout.startswith("already running")
    os.kill(int((runs / "cells.pid").read_text()), signal.SIGTERM)
    wait_for(lambda: not (runs / "cells_queue.pid").exists())
    assert [line.split()[0] for line in (runs / "queue.log").read_text().splitlines()] == ["pc"]
    assert "sweep pc stopped with status 143" in (runs / "logs" / "cells.log").read_text()


def test_no_sweep_is_a_usage_line(tmp_path) -> None:
    work, runs = queue(tmp_path)
    done = run(work, runs, str(runs))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "usage:" in done.stderr
