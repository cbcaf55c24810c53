#!/usr/bin/env bash
# Everything the GPU issues need measured, in as few device calls as possible (each call has 10 minutes).
# On the GPU machine, from the project root, with .whl/ (scripts/gpu-bundle.sh) carried along:
#   scripts/gpu-check.sh tests     GPU tests (training through queue/worker with both backends, Compare) and
#                                  the Compare bench: ~6 min on an H200
#   scripts/gpu-check.sh train     the training A/B bench: reference script vs app job vs fast preset: ~8 min
# Results (pytest log, bench tables, raw JSONL) go to $OUT (the device tool brings that folder back).
set -euo pipefail
stage=${1:?usage: scripts/gpu-check.sh tests|train}
out=${OUT:-/tmp/medcot-gpu-out}
work=${MEDCOT_GPU_WORK:-/tmp/medcot-gpu}
mkdir -p "$out" "$work"
if [ ! -f /tmp/site/.installed ]; then  # /tmp survives while the machine stays warm
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  touch /tmp/site/.installed
fi
export PYTHONPATH=/tmp/site:$PWD MEDCOT_GPU_WORK=$work
[ -f "$work/model/config.json" ] || python3 bench/make_random_8b.py "$work"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
case "$stage" in
  tests)
    python3 -m pytest -m gpu -v -p no:cacheprovider 2>&1 | tee "$out/pytest-gpu.log"
    python3 bench/compare_gpu.py --tokens 256 --repeats 2 --json "$out/compare-gpu.json" 2>&1 | tee "$out/compare-bench.txt"
    ;;
  train)
    python3 bench/gpu_training.py --work "$work" --arms ref,app,fast --rounds 2 --max-steps 40 \
      --results "$out/results-gpu.jsonl" 2>&1 | tee "$out/train-bench.txt"
    ;;
  *) echo "unknown stage $stage" >&2; exit 2 ;;
esac
