#!/usr/bin/env bash
# GPU training proof (issue: real scale): the imagenet preset trained on a generated ImageNet-layout
# tree with the streaming loader, bf16 autocast and channels-last, checkpointing every 50 steps;
# killed mid-run, resumed, and the result compared with an uninterrupted run; then the training
# step's throughput against the reference implementation. Run it on a GPU machine as one command:
#
#   bash scripts/gpu_training_check.sh            # results under $OUT (default /tmp/gpu_check)
#
# Sizes are for one H200 within ~8 minutes; STEPS, IMAGES, WORKERS, BATCH, RES and DEVICE override
# them. The interrupted run is killed (SIGKILL) a few steps after its first checkpoint (every 50 steps).
set -euo pipefail
OUT=${OUT:-/tmp/gpu_check}
STEPS=${STEPS:-300}
CKPT_EVERY=${CKPT_EVERY:-50}
RES=${RES:-224}
IMAGES=${IMAGES:-6400}
WORKERS=${WORKERS:-12}
BATCH=${BATCH:-128}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python}
mkdir -p "$OUT"
$PY - "$OUT/tree" "$IMAGES" <<'PYEOF'
import sys
from pathlib import Path
from benchmarks.loader import generate_tree
print(generate_tree(Path(sys.argv[1]), int(sys.argv[2]), 100, 224, 8))
PYEOF
cat > "$OUT/train.yaml" <<YAML
space: {name: ofa_mbv3, config: imagenet}
data: {name: imagefolder-stream, root: $OUT/tree, batch_size: $BATCH, eval_batch_size: 256, workers: $WORKERS, holdout_size: 500}
training: {device: $DEVICE, amp: auto, channels_last: true, checkpoint_every_steps: $CKPT_EVERY, max_steps: $STEPS, bn_recal_batches: 2, eval_random_subnets: 0, seed: 0, progress: false}
YAML
start=$(date +%s)
$PY -m nas.cli train "$OUT/train.yaml" --out "$OUT/reference_run" > "$OUT/uninterrupted.log" 2>&1
echo "uninterrupted: $(( $(date +%s) - start )) s" | tee "$OUT/summary.txt"
$PY -m nas.cli train "$OUT/train.yaml" --out "$OUT/run" > "$OUT/killed.log" 2>&1 &
pid=$!
until [ -f "$OUT/run/checkpoint/state.json" ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
sleep 2
kill -9 "$pid" 2>/dev/null && echo "killed (SIGKILL) after its first checkpoint" | tee -a "$OUT/summary.txt" || true
wait "$pid" 2>/dev/null || true
$PY -m nas.cli train "$OUT/train.yaml" --out "$OUT/run" --resume > "$OUT/resumed.log" 2>&1
$PY - "$OUT" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
from pathlib import Path
import torch
from search_spaces.training import checkpoint as ckpt
out = Path(sys.argv[1])
a, sa = ckpt.load_checkpoint(out / "reference_run" / "checkpoint")
b, sb = ckpt.load_checkpoint(out / "run" / "checkpoint")
same = set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
epochs = [json.loads(l) for l in (out / "reference_run" / "metrics.jsonl").read_text().splitlines()]
rates = [round(r["images_per_s"]) for r in epochs if "images_per_s" in r]
stopped = [l for l in (out / "uninterrupted.log").read_text().splitlines() if "stopped at max_steps" in l]
print(json.dumps({"resumed_equals_uninterrupted": same, "global_step": sb.get("global_step"),
                  "images_per_s_per_epoch": rates, "last": stopped[-1:] }))
PYEOF
$PY -m benchmarks.train_throughput --baseline ofa --device "$DEVICE" --batch "$BATCH" --resolution "$RES" \
    --out "$OUT/train_throughput_cuda.json" | tee -a "$OUT/summary.txt"
