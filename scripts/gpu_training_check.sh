#!/usr/bin/env bash
# GPU training proof (issue: real scale): the imagenet preset trained on a generated ImageNet-layout
# tree with the streaming loader, bf16 autocast and channels-last, checkpointing every 50 steps;
# killed mid-run, resumed, and the result compared with an uninterrupted run; then the training
# step's throughput against the reference implementation. Run it on a GPU machine as one command:
#
#   bash scripts/gpu_training_check.sh            # results under $OUT (default /tmp/gpu_check)
#
# Sizes are for one H200 within ~8 minutes; STEPS, KILL_AFTER_S, IMAGES and WORKERS override them.
set -euo pipefail
OUT=${OUT:-/tmp/gpu_check}
STEPS=${STEPS:-300}
KILL_AFTER_S=${KILL_AFTER_S:-60}
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
training: {device: $DEVICE, amp: auto, channels_last: true, checkpoint_every_steps: 50, max_steps: $STEPS, bn_recal_batches: 2, eval_random_subnets: 0, seed: 0}
YAML
start=$(date +%s)
$PY -m nas.cli train "$OUT/train.yaml" --out "$OUT/reference_run" > "$OUT/uninterrupted.log" 2>&1
echo "uninterrupted: $(( $(date +%s) - start )) s" | tee "$OUT/summary.txt"
timeout -s KILL "$KILL_AFTER_S" $PY -m nas.cli train "$OUT/train.yaml" --out "$OUT/run" > "$OUT/killed.log" 2>&1 || echo "killed after $KILL_AFTER_S s" | tee -a "$OUT/summary.txt"
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
steps = [json.loads(l) for l in (out / "run" / "metrics.jsonl").read_text().splitlines() if "images_per_s" in l]
print(json.dumps({"resumed_equals_uninterrupted": same, "global_step": sb.get("global_step"),
                  "images_per_s": [round(s["images_per_s"]) for s in steps]}))
PYEOF
$PY -m benchmarks.train_throughput --baseline ofa --device "$DEVICE" --batch "$BATCH" --resolution 224 \
    --out "$OUT/train_throughput_cuda.json" | tee -a "$OUT/summary.txt"
