#!/usr/bin/env bash
# GPU latency validation (issue: hardware awareness on GPUs): for each CUDA backend, a table of the
# imagenet preset built and validated on random subnets at batch 1 and 64 — share within ±10%,
# Spearman, MAPE, build time, how many calibration subnets the correction needed — as JSON under
# $OUT. Run it on a GPU machine as one command:
#
#   bash scripts/gpu_latency_check.sh        # results under $OUT (default /tmp/gpu_latency)
#
# Sizes fit one H200 in ~9 minutes: 3 of the preset's 25 resolutions and 60 subnets by default
# (RESOLUTIONS="" for all 25, ARCHS=100 for the full validation). BACKENDS, BATCHES and
# DTYPE override the rest. Tried on CPU with DEVICE=cpu BACKENDS=torch,torch-compile ARCHS=12.
set -euo pipefail
OUT=${OUT:-/tmp/gpu_latency}
DEVICE=${DEVICE:-cuda}
BACKENDS=${BACKENDS:-cuda-graph,torch,triton}
BATCHES=${BATCHES:-1,64}
RESOLUTIONS=${RESOLUTIONS-160,192,224}
ARCHS=${ARCHS:-60}
CALIBRATION=${CALIBRATION:-20}
DTYPE=${DTYPE:-float16}
PY=${PY:-python}
mkdir -p "$OUT"
res=()
[ -n "$RESOLUTIONS" ] && res=(--resolutions "$RESOLUTIONS")
for backend in ${BACKENDS//,/ }; do
  start=$(date +%s)
  if [ "$DEVICE" = cpu ]; then flags=(--devices cpu --cpu-backends "$backend"); else flags=(--devices "$DEVICE" --backends "$backend" --dtype "$DTYPE"); fi
  $PY -m benchmarks.latency_table --config imagenet "${res[@]}" --batches "$BATCHES" --archs "$ARCHS" \
    --calibration "$CALIBRATION" --rounds 1 "${flags[@]}" --out "$OUT/latency_${DEVICE}_${backend}.json" \
    > "$OUT/${backend}.log" 2>&1 || echo "backend $backend failed (see $OUT/${backend}.log)"
  echo "$backend: $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
  grep -h "within" "$OUT/${backend}.log" | tee -a "$OUT/summary.txt" || true
done
