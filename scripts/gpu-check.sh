#!/usr/bin/env bash
# Everything the GPU issues need measured, in two device calls of under 9 minutes each. On the GPU machine, from
# the project root, with .whl/ (scripts/gpu-bundle.sh) carried along:
#   scripts/gpu-check.sh tests   GPU test suite (training through queue/worker, Compare) and the Compare bench
#   scripts/gpu-check.sh train   training A/B rounds (reference script vs app job), fast preset, app-on-GPU walk
#   scripts/gpu-check.sh final   on 2 GPUs: balanced training A/B (GPU 0 ref,app,ref while GPU 1 runs app,ref,app),
#                                then the Compare bench (GPU 0) beside the GPU Compare tests and the evaluation
#                                throughput bench (GPU 1)
#   scripts/gpu-check.sh compare one GPU alone: the Compare bench (engine with each attention, plain generate),
#                                then the GPU Compare tests
#   scripts/gpu-check.sh scale   on 2+ GPUs: the two-GPU training tests, then data-parallel scaling (1 vs all GPUs)
#   scripts/gpu-check.sh merge   one GPU: the engine with the tuned side per row vs merged (same questions), the
#                                batch engine's GPU tests, then the Compare bench and its GPU tests
#   scripts/gpu-check.sh grpo    one GPU: GRPO recipe steps (8B 4-bit, 8 x 8 completions of 512 tokens) with each of
#                                TRL's generation options (bench/grpo_gpu.py), the merged-engine GPU test, Compare bench
#   scripts/gpu-check.sh engine  one GPU: the batch engine's GPU tests, then the evaluation bench (lane a: the engine
#                                on a whole MedQA-size paired evaluation; lane b: the old path, continuous
#                                batching and the Compare bench; on one GPU, one lane per call)
# Each stage runs two lanes: on a machine with 2 GPUs side by side (one GPU each), on one GPU one after the other
# (GPU_CHECK_LANE=a or b runs one of them: on one GPU the train stage needs both lanes in separate calls).
# Every step gets at most what is left of the stage's budget (GPU_CHECK_BUDGET_S, default 500 s), so the call
# returns with its logs even when a step hangs. Results go to $OUT (at most 8 files, flat).
set -uo pipefail
stage=${1:?usage: scripts/gpu-check.sh tests|train|final|compare|scale|engine|merge|grpo}
out=${OUT:-/tmp/medcot-gpu-out}
work=${MEDCOT_GPU_WORK:-/tmp/medcot-gpu}
budget=${GPU_CHECK_BUDGET_S:-$(case "$stage" in final|scale) echo 585 ;; *) echo 500 ;; esac)}
mkdir -p "$out" "$work"
# Seconds a step may still run: up to $phase_end (a phase's own deadline) or the stage's budget.
left() { local end=${phase_end:-$budget}; echo $((end - SECONDS > 5 ? end - SECONDS : 5)); }

# run GPU LOG CMD...: one step on one GPU, killed when the budget runs out; its exit status goes to the log.
run() {
  local gpu=$1 log=$2
  shift 2
  echo "== [$SECONDS s] $*" >>"$log"
  CUDA_VISIBLE_DEVICES=$gpu timeout --signal=INT --kill-after=15 "$(left)" "$@" >>"$log" 2>&1
  echo "== [$SECONDS s] exit $? : $1 $2" >>"$log"
}

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >"$out/install.txt" 2>&1 || { cat "$out/install.txt"; exit 1; }
# PYTHONFAULTHANDLER: a crash after pytest's own fault handler is gone (interpreter exit) still prints where.
export PYTHONPATH=/tmp/site:$PWD MEDCOT_GPU_WORK=$work PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONFAULTHANDLER=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch, transformers, peft, gradio; print("torch", torch.__version__, "transformers",
transformers.__version__, "peft", peft.__version__, "gradio", gradio.__version__)' 2>&1 | tail -1
  echo "installed in $SECONDS s"; } >>"$out/install.txt"
gpus=$(nvidia-smi -L | wc -l)
lanes() {
  case "${GPU_CHECK_LANE:-both}" in  # one lane per call: the way to split a stage over two calls on one GPU
    a) lane_a ;;
    b) lane_b ;;
    *) if [ "$gpus" -gt 1 ]; then lane_a & lane_b & wait; else lane_a; lane_b; fi ;;
  esac
}
# Lane B trains in its own folder (its reference-script arm writes ref-out/ too), on the same model and rows.
lane_b_folder() {
  mkdir -p "$work-b" && ln -sfn "$work/model" "$work-b/model" && ln -sfn "$work/rows.jsonl" "$work-b/rows.jsonl"
}
second=$((gpus > 1 ? 1 : 0))
run 0 "$out/install.txt" python3 bench/make_random_8b.py "$work"

case "$stage" in
  tests)
    run 0 "$out/install.txt" python3 bench/compare_gpu.py --work "$work" --prepare  # the adapter, before both lanes
    lane_a() { run 0 "$out/pytest-gpu.log" python3 -m pytest -v -p no:cacheprovider tests/test_*gpu*.py; }
    lane_b() {
      run "$second" "$out/compare-bench.txt" python3 bench/compare_gpu.py --work "$work" --tokens 256 --repeats 3 \
        --json "$out/compare-gpu.json"
      if [ -f bench/eval_throughput.py ]; then run "$second" "$out/eval-throughput.txt" python3 bench/eval_throughput.py; fi
    }
    ;;
  train)
    lane_b_folder
    lane_a() {
      run 0 "$out/train-bench.txt" python3 bench/gpu_training.py --work "$work" --arms ref,app --rounds 3 \
        --max-steps 30 --logging-steps 5 --results "$out/results-gpu.jsonl"
    }
    lane_b() {
      run "$second" "$out/fast-bench.txt" python3 bench/gpu_training.py --work "$work-b" --rounds 1 --max-steps 30 \
        --logging-steps 5 --arms "fast,sweep:packed-4x2-no-recompute:--packing --batch 4 --grad-accum 2 --checkpointing false" \
        --results "$out/results-fast.jsonl"
      run "$second" "$out/app-on-gpu.txt" python3 bench/app_on_gpu.py --work "$work" --steps 20 --tokens 256
    }
    ;;
  final)
    lane_b_folder
    run 0 "$out/install.txt" python3 bench/compare_gpu.py --work "$work" --prepare  # the adapter both benches read
    # 20 steps, steady from step 6; each run is its own round, so --report pairs the runs that ran side by side.
    train() {  # train GPU LANE ARMS LOG
      run "$1" "$4" python3 bench/gpu_training.py --work "$work$([ "$1" = 0 ] || echo -b)" --lane "$2" --arms "$3" \
        --rounds 1 --max-steps 20 --logging-steps 2 --steady-after 6 --results "$out/results-$2.jsonl"
    }
    lane_a() { train 0 gpu0 ref,app,ref "$out/train-bench.txt"; }
    lane_b() { train "$second" "gpu$second" app,ref,app "$work-b/train-bench.txt"; }
    phase_end=$((budget - 160)) lanes  # leaves the Compare bench its ~140 s
    cat "$work-b/train-bench.txt" >>"$out/train-bench.txt" 2>/dev/null
    python3 bench/gpu_training.py --report "$out"/results-gpu*.jsonl >>"$out/train-bench.txt" 2>&1
    lane_a() {
      run 0 "$out/compare-bench.txt" python3 bench/compare_gpu.py --work "$work" --tokens 256 --repeats 3 \
        --json "$out/compare-gpu.json"
    }
    lane_b() {  # the GPU Compare tests, then the evaluation bench with what is left (writes $out/eval_throughput.json)
      run "$second" "$out/pytest-gpu.log" python3 -m pytest -v -p no:cacheprovider tests/test_compare_gpu.py
      run "$second" "$out/eval-throughput.txt" python3 bench/eval_throughput.py "$out" --work "$work" \
        --batches 1 8 32 --tokens 128 --repeats 3
    }
    ;;
  compare)
    # One GPU, nothing beside it (a compile on a neighbouring GPU competes for the host): bench, then its tests.
    lane_a() {
      run 0 "$out/compare-bench.txt" python3 bench/compare_gpu.py --work "$work" --tokens 256 --repeats 3 \
        --json "$out/compare-gpu.json"
      run 0 "$out/pytest-gpu.log" python3 -m pytest -v -p no:cacheprovider tests/test_compare_gpu.py
    }
    lane_b() { :; }
    ;;
  engine)
    lane_a() {
      run 0 "$out/eval-engine.txt" python3 bench/eval_throughput.py "$out" --work "$work" --paths engine
      run 0 "$out/pytest-gpu.log" python3 -m pytest -v -p no:cacheprovider tests/test_engine_gpu.py
    }
    lane_b() {
      run 0 "$out/eval-others.txt" python3 bench/eval_throughput.py "$out/others" --work "$work" --paths old cb \
        --cb-questions "${CB_QUESTIONS:-64}" --cb-graphs ${CB_GRAPHS:-off on}
      cp "$out/others/eval_throughput.json" "$out/eval_others.json" 2>/dev/null; rm -rf "$out/others"
      run 0 "$out/pytest-gpu.log" python3 -m pytest -v -p no:cacheprovider tests/test_engine_gpu.py
      [ -n "${SKIP_COMPARE:-}" ] || run 0 "$out/compare-bench.txt" python3 bench/compare_gpu.py --work "$work" \
        --tokens 256 --repeats 3 --json "$out/compare-gpu.json"
    }
    ;;
  merge)
    # One GPU: the engine with the tuned side per row vs merged into the weights (evaluate/engine_answers.py's
    # MERGE_TUNED), on the same questions in one call, the engine's GPU tests, then Compare (bench, tests).
    lane_a() {
      run 0 "$out/eval-merge.txt" python3 bench/eval_throughput.py "$out" --work "$work" --paths engine merged \
        --questions "${QUESTIONS:-512}"
      run 0 "$out/pytest-gpu.log" python3 -m pytest -v -p no:cacheprovider tests/test_engine_gpu.py
      run 0 "$out/compare-bench.txt" python3 bench/compare_gpu.py --work "$work" --tokens 256 --repeats 3 \
        --json "$out/compare-gpu.json"
      run 0 "$out/pytest-compare.log" python3 -m pytest -v -p no:cacheprovider tests/test_compare_gpu.py
    }
    lane_b() { :; }
    ;;
  grpo)
    # GRPO leaves GRPO_LEAVE_S (150 s) for the merged-engine GPU test and the Compare bench (SKIP_COMPARE=1: none).
    lane_a() {
      phase_end=$((budget - ${GRPO_LEAVE_S:-150})) run 0 "$out/grpo-bench.txt" python3 bench/grpo_gpu.py \
        --work "$work" --options "${GRPO_OPTIONS:-auto:generate,auto:continuous_batching}" --steps "${GRPO_STEPS:-2}"
      python3 bench/grpo_gpu.py --report "$out/grpo-bench.txt" >"$out/grpo-table.txt" 2>&1
      run 0 "$out/pytest-gpu.log" python3 -m pytest -v -p no:cacheprovider tests/test_engine_gpu.py -k merged
      [ -n "${SKIP_COMPARE:-}" ] || run 0 "$out/compare-bench.txt" python3 bench/compare_gpu.py --work "$work" \
        --tokens 256 --repeats 3 --json "$out/compare-gpu.json"
    }
    lane_b() { :; }
    ;;
  scale)
    # Every step uses all GPUs at once, so there is one lane: the 2-GPU tests, then 1 GPU vs all of them.
    all_gpus=$(seq -s, 0 $((gpus - 1)))
    lane_a() {
      run "$all_gpus" "$out/pytest-scale.log" python3 -m pytest -v -p no:cacheprovider tests/test_gpu_training.py \
        -k two_gpus
      run "$all_gpus" "$out/data-parallel.txt" python3 bench/data_parallel.py --work "$work" --gpus "1,$gpus" \
        --rounds 2 --max-steps 16 --logging-steps 2 --steady-after 6
      cp "$work/data-parallel.jsonl" "$out/" 2>/dev/null
    }
    lane_b() { :; }
    ;;
  *) echo "unknown stage $stage" >&2; exit 2 ;;
esac

lanes
if [ "$stage" = train ]; then
  python3 bench/gpu_training.py --report "$out/results-gpu.jsonl" "$out/results-fast.jsonl" >>"$out/train-bench.txt" 2>&1
fi
echo "stage $stage done in $SECONDS s on $gpus GPU(s)"
tail -n 30 "$out"/*.txt "$out"/*.log 2>/dev/null | cut -c1-300 || true
