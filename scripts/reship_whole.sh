#!/usr/bin/env bash
# Reship the whole-photo model from a checkpoint of its long run, with every figure of its card.
#
#   scripts/reship_whole.sh CHECKPOINT NOTE RUN_DIR [RUN_DIR ...]
#   PRIOR_RUNS=FILE scripts/reship_whole.sh CHECKPOINT NOTE [RUN_DIR ...]
#
# PRIOR_RUNS: a JSON file with the training_runs of runs whose folders are gone (an earlier
# card's record: `git show REV:docs/results/model_card_whole.json > FILE`), counted first.
#
# The steps, each a script of the repo (their docstrings say what they measure):
#   1. scripts/choose_decode.py: the decode (expectation or local DSNT radius (1-4 cells, 1-8 on 24 px maps)) on the run's
#      validation split, box crops;
#   2. scripts/ship_whole.py: calibrate on the held-out people, write the half-precision file,
#      evaluate it (LSP test box and whole photo, MPII frames), the card (RUN_DIRs: every run
#      the model's training went through, for its cost);
#   3. scripts/ship_whole.py --latency, with the processes of PAUSE_PID_FILES stopped
#      (SIGSTOP/SIGCONT; default /work/runs/train.pid and /work/runs/cells.pid, the long run
#      and the experiment cells of scripts/long_run.sh's layout);
#   4. scripts/whole_validation.py: the whole-photo search on the held-out photos (the card's
#      table, matched by the file's sha256);
#   5. benchmarks/peers.py: MoveNet and MediaPipe in the same run as the new file (paused
#      likewise during its latency part);
#   6. scripts/fit_gap.py: the new file on its own training people against the held-out ones;
#   7. benchmarks/video_tracking.py: --track on clips made from LSP test photos (pan, zoom,
#      cuts);
#   8. the card and the README rewritten from the records (ship_whole.py --render,
#      scripts/update_readme.py).
# A failing step stops the script with its exit status; the log of each is under LOGS
# (default /work/runs/logs). Takes 40-50 minutes on the 2-core Intel machine beside a
# training.
set -euo pipefail
cd "$(dirname "$0")/.."
prior=${PRIOR_RUNS:-}
if [ $# -lt 2 ] || { [ $# -lt 3 ] && [ -z "$prior" ]; }; then
  echo "usage: [PRIOR_RUNS=FILE] scripts/reship_whole.sh CHECKPOINT NOTE RUN_DIR [RUN_DIR ...]" >&2
  exit 2
fi
checkpoint=$1 note=$2
shift 2
[ -f "$checkpoint" ] || { echo "reship_whole: $checkpoint: no such checkpoint" >&2; exit 2; }
run_args=()
if [ -n "$prior" ]; then
  [ -f "$prior" ] || { echo "reship_whole: PRIOR_RUNS=$prior: no such file" >&2; exit 2; }
  run_args+=(--prior_runs "$prior")
fi
for dir in "$@"; do
  [ -f "$dir/last.ckpt" ] || { echo "reship_whole: $dir: no last.ckpt (not a run folder)" >&2; exit 2; }
  run_args+=(--run_dir "$dir")
done
logs=${LOGS:-/work/runs/logs}
pause_files=${PAUSE_PID_FILES:-/work/runs/train.pid /work/runs/cells.pid}
mkdir -p "$logs"
export PYTHONPATH=src
py=.venv/bin/python

signal() {  # signal STOP|CONT: the processes named by the pause files, where they run
  for file in $pause_files; do
    [ -f "$file" ] && kill -"$1" "$(cat "$file")" 2>/dev/null || true
  done
}
trap 'signal CONT' EXIT

echo "1/8 choose the decode on validation"
$py scripts/choose_decode.py "$checkpoint" > "$logs/reship_decode.log" 2>&1
read -r coords radius < <($py -c "import json; c = json.load(open('docs/results/decode_choice.json'))['chosen']; print(c['coords'], c.get('local_radius', 4))")
echo "2/8 calibrate, ship and evaluate ($coords, radius $radius)"
$py scripts/ship_whole.py --checkpoint "$checkpoint" "${run_args[@]}" --coords "$coords" \
  --local_radius "$radius" --note "$note" > "$logs/reship_ship.log" 2>&1
echo "3/8 latency, the other processes paused"
signal STOP
$py scripts/ship_whole.py --latency > "$logs/reship_latency.log" 2>&1
signal CONT
echo "4/8 the whole-photo search on held-out photos"
OMP_NUM_THREADS=1 $py scripts/whole_validation.py --setting flip=true \
  --setting flip=true,flip_passes=final --setting flip=false --setting box=true,flip=true \
  > "$logs/reship_whole_validation.log" 2>&1
echo "5/8 the peers in the same run"
pause_args=()
for file in $pause_files; do pause_args+=(--pause-pid-file "$file"); done
# ONNX Runtime insisted on where installed: a model that does not export stops the reship
engine=$($py -c "from dsntpose.runtime import resolve_engine; print(resolve_engine())")
OMP_NUM_THREADS=1 $py benchmarks/peers.py "${pause_args[@]}" --engine "$engine" \
  --also whole_efficientnet_lite0=src/dsntpose/weights/whole_efficientnet_lite0.pt \
  --latency-images 50 --rounds 2 --no-efficiency > "$logs/reship_peers.log" 2>&1
echo "6/8 training people against held-out people"
OMP_NUM_THREADS=1 $py scripts/fit_gap.py > "$logs/reship_fit_gap.log" 2>&1
echo "7/8 video tracking on clips made from LSP test photos"
OMP_NUM_THREADS=1 $py benchmarks/video_tracking.py > "$logs/reship_video.log" 2>&1
echo "8/8 the card and the README from the records"
$py scripts/ship_whole.py --render "${run_args[@]}" > "$logs/reship_render.log" 2>&1
$py scripts/update_readme.py >> "$logs/reship_render.log" 2>&1
echo "done: git diff --stat shows what changed"
