#!/usr/bin/env bash
# The whole-photo model's long run on a lent GPU machine, within one session's device time.
#
#   scripts/gpu_long_run.sh stage                 # gather the carried data part
#   scripts/gpu_long_run.sh train [MINUTES] [extra dsntpose train overrides ...]
#
# Prepared here (CPU machine), once:  .venv/bin/python scripts/gpu_pack.py
#   (.gpu/part1..K: the training data in parts that travel, .gpu/wheels: the packages the GPU
#   image lacks, .gpu/init.pt: the start, a copy of snapshots/whole_continuation.pt or newer).
# Then one device call per part, back to back (the machine stays held 30 s after a call):
#   run(command="scripts/gpu_long_run.sh stage", carry=[".gpu/part1"])   ... up to part K-1,
#   run(command="scripts/gpu_long_run.sh train 6", carry=[".gpu/partK", ".gpu/wheels", ".gpu/init.pt"],
#       timeout_s=600)
# `stage` copies the carried part into $DATA (default /tmp/dsntpose_data, outside the work tree,
# kept while the machine is held). `train` stages its own part, refuses to start while a part is
# missing (it names them), measures images per second in a 40-step probe, sets the epochs so that
# the run takes about MINUTES (default 6) on that machine, trains (bf16 mixed precision, the
# recipe mixed_efficientnet_lite0_s16_presence warm-started from .gpu/init.pt) and writes to $OUT
# the best epoch in half precision (whole_gpu.pt), its metrics.csv and log.txt. What comes back is
# a checkpoint for scripts/reship3-style evaluation here (choose_decode, calibrate, ship_whole).
# PYTHON (default python3, the GPU image's) and ACCELERATOR (default gpu) can be set to rehearse
# the whole sequence on this CPU machine (tests/test_gpu_run.py does).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-/tmp/dsntpose_data}
python=${PYTHON:-python3}
accelerator=${ACCELERATOR:-gpu}
out=${OUT:-/tmp/dsntpose_out}
step=${1:-}
shift || true

stage() {
  mkdir -p "$data"
  local found=0
  for part in .gpu/part*/data; do
    [ -d "$part" ] || continue
    cp -r "$part/." "$data/"
    found=1
    echo "staged $(dirname "$part") into $data"
  done
  [ "$found" = 1 ] || { echo "gpu_long_run: no .gpu/partK/data carried in this call" >&2; exit 2; }
}

missing_parts() {  # the parts of .gpu/manifest.json with a file not yet in $data
  "$python" - "$data" <<'EOF'
import json, os, sys
data = sys.argv[1]
manifest = json.load(open(".gpu/manifest.json"))
print(" ".join(p["name"] for p in manifest["parts"]
               if not all(os.path.isfile(os.path.join(data, f)) for f in p["files"])))
EOF
}

case "$step" in
  stage)
    stage
    left=$(missing_parts)
    echo "still to stage: ${left:-nothing}"
    ;;
  train)
    minutes=${1:-6}
    shift || true
    stage
    left=$(missing_parts)
    if [ -n "$left" ]; then
      echo "gpu_long_run: parts not staged on this machine yet: $left (stage them first, back to back)" >&2
      exit 2
    fi
    [ -f .gpu/init.pt ] || { echo "gpu_long_run: .gpu/init.pt was not carried" >&2; exit 2; }
    if compgen -G ".gpu/wheels/*.whl" > /dev/null; then
      "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu/wheels/*.whl
      export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    mkdir -p "$out"
    workers=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
    precision=$([ "$accelerator" = gpu ] && echo bf16-mixed || echo 32-true)
    batch=${BATCH:-64}
    common=(--config mixed_efficientnet_lite0_s16_presence
      --data.root "$data/lsp" --data.lspet_root "$data/lspet"
      --data.mpii_crops_root "$data/mpii_train_crops" --data.coco_root "$data/coco_mini"
      --data.batch_size "$batch" --data.num_workers "$workers"
      --train.accelerator "$accelerator" --train.precision "$precision"
      --train.init_from .gpu/init.pt --train.progress_bar false)
    probe_steps=${PROBE_STEPS:-40}
    start=$(date +%s.%N)
    "$python" -m dsntpose train "${common[@]}" --train.out_dir /tmp/dsntpose_probe \
      --train.epochs 1 --train.max_steps "$probe_steps" --train.val_every 1000 "$@" \
      > "$out/probe.txt" 2>&1 || { tail -20 "$out/probe.txt" >&2; exit 1; }
    seconds=$("$python" -c "import time; print(time.time() - $start)")
    epochs=$("$python" - "$probe_steps" "$batch" "$seconds" "$minutes" <<'EOF'
import sys
steps, batch, seconds, minutes = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
per_s = steps * batch / seconds  # start-up included: an under-estimate, so the run ends in time
epoch = 11474 * 1.1 + 600 * 1.1  # training people and negatives, plus a validation pass
print(max(1, min(300, int(minutes * 60 * per_s / epoch))))
EOF
)
    echo "probe: $probe_steps steps of $batch in ${seconds%.*} s; training $epochs epochs" | tee "$out/log.txt"
    "$python" -m dsntpose train "${common[@]}" --train.out_dir /tmp/dsntpose_run \
      --train.epochs "$epochs" "$@" >> "$out/log.txt" 2>&1 || { tail -20 "$out/log.txt" >&2; exit 1; }
    best=/tmp/dsntpose_run/best.ckpt
    [ -f "$best" ] || best=/tmp/dsntpose_run/last.ckpt
    "$python" -c "from dsntpose.checkpoint import save_half; save_half('$best', '$out/whole_gpu.pt', extra={'trained_on': 'gpu_long_run.sh', 'epochs': $epochs})"
    cp /tmp/dsntpose_run/logs/csv/metrics.csv "$out/metrics.csv" 2>/dev/null || true
    tail -3 "$out/log.txt"
    ;;
  *)
    echo "usage: scripts/gpu_long_run.sh stage | train [MINUTES] [overrides ...]" >&2
    exit 2
    ;;
esac
