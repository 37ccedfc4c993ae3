#!/usr/bin/env bash
# Run experiment sweeps one after another in the background, on one thread, beside the long run.
#
#   scripts/cells_queue.sh [RUNS_DIR] SWEEP [SWEEP ...]      e.g. scripts/cells_queue.sh /work/runs pc pa pf
#
# Each SWEEP is `python -m experiments.run SWEEP` (finished cells are skipped, an unfinished one
# resumes from its last.ckpt: running this again after a stop loses nothing), its run folders
# under RUNS_DIR/experiments (default RUNS_DIR=/work/runs, outside the work tree). The pid of
# the sweep running now is in RUNS_DIR/cells.pid (what scripts/reship_whole.sh pauses while it
# times; `kill -TERM` on it stops the queue, the cell keeping its last.ckpt), the queue's own in
# RUNS_DIR/cells_queue.pid; log RUNS_DIR/logs/cells.log. Data: DATA
# (default ../shared/data beside the repo). Each finished cell writes docs/results/<sweep>/:
# commit those files, then `python -m experiments.report`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=/work/runs
if [ $# -gt 0 ] && [ -d "$1" ]; then runs=$1; shift; fi
if [ $# -eq 0 ]; then
  echo "usage: scripts/cells_queue.sh [RUNS_DIR] SWEEP [SWEEP ...]" >&2
  exit 2
fi
data=${DATA:-$(realpath ../shared/data)}
mkdir -p "$runs/logs" "$runs/experiments"
if [ -f "$runs/cells_queue.pid" ] && kill -0 "$(cat "$runs/cells_queue.pid")" 2>/dev/null; then
  echo "already running: pid $(cat "$runs/cells_queue.pid")"; exit 0
fi
(
  for sweep in "$@"; do
    DSNTPOSE_RUNS="$runs/experiments" OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python \
      -m experiments.run "$sweep" --data_root "$data/lsp" --mpii_root "$data/mpii" \
      >> "$runs/logs/cells.log" 2>&1 &
    echo $! > "$runs/cells.pid"
    status=0
    wait $! || status=$?
    if [ $status -ne 0 ]; then
      echo "cells_queue: sweep $sweep stopped with status $status" >> "$runs/logs/cells.log"
      [ $status -gt 128 ] && break  # stopped by a signal (kill -TERM): the queue stops too
    fi
  done
  rm -f "$runs/cells.pid" "$runs/cells_queue.pid"
) > /dev/null 2>&1 &
echo $! > "$runs/cells_queue.pid"
echo "started queue pid $(cat "$runs/cells_queue.pid") ($*); log $runs/logs/cells.log"
