#!/usr/bin/env bash
# Start or resume the whole-photo model's long training in the background (one process).
#
#   scripts/long_run.sh [RUNS_DIR] [extra dsntpose train overrides ...]
#
# The run folder RUNS_DIR/whole (default RUNS_DIR=/work/runs, outside the work tree) holds
# last.ckpt: running this again after a stop resumes exactly there (`fit` resumes by default).
# Threads: THREADS (default 1, leaving the other core free) at the start; afterwards the run
# follows RUNS_DIR/threads (`echo 2 > RUNS_DIR/threads` while the machine is otherwise idle,
# `echo 1` when other work starts; read every 20 steps). Pid in RUNS_DIR/train.pid, log in
# RUNS_DIR/logs/whole.log. Data: DATA (default ../shared/data beside the repo).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-/work/runs}
shift || true
data=${DATA:-$(realpath ../shared/data)}
threads=${THREADS:-1}
mkdir -p "$runs/logs"
if [ -f "$runs/train.pid" ] && kill -0 "$(cat "$runs/train.pid")" 2>/dev/null; then
  echo "already running: pid $(cat "$runs/train.pid")"; exit 0
fi
[ -f "$runs/threads" ] || echo "$threads" > "$runs/threads"
DSNTPOSE_THREADS_FILE="$runs/threads" OMP_NUM_THREADS=$threads nohup .venv/bin/dsntpose train \
  --config mixed_efficientnet_lite0_s16_presence \
  --data.root "$data/lsp" --data.lspet_root "$data/lspet" \
  --data.mpii_crops_root "$data/mpii_train_crops" --data.coco_root "$data/coco_mini" \
  --train.out_dir "$runs/whole" --train.progress_bar false "$@" \
  >> "$runs/logs/whole.log" 2>&1 &
echo $! > "$runs/train.pid"
echo "started pid $(cat "$runs/train.pid"); log $runs/logs/whole.log"
