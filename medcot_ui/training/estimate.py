"""How much GPU memory and how long a run config will take (starting and loading the model included), with the
basis spelled out. The model's shape comes from ``model_shape``, the GPUs from ``gpus``; ``estimate_text`` says
it in words for the Train tab.

Starting = process start, imports, data preparation and saves (fitted, see STARTUP_S) + reading the checkpoint.

Memory (GiB, like ``torch.cuda.max_memory_allocated`` and the Runs tab) adds up:
  * frozen weights: 4-bit NF4 with double quantisation ~0.516 byte/param for the decoder's linear layers;
    embeddings and LM head stay 16-bit (32-bit on the transformers + bitsandbytes path, whose
    ``prepare_model_for_kbit_training`` upcasts them); without 4-bit, 2 bytes/param (4 in fp32);
  * LoRA: fp32 weights + fp32 gradients + optimizer states (8-bit Adam 2 bytes/param, Adam 8);
  * activations of the longest micro-batch: one decoder layer's working set 2 x (10 h + 4 i) bytes/token,
    plus every layer's input when checkpointing keeps them on the GPU ('true'), or every layer's working set
    without checkpointing; Unsloth's checkpointing offloads layer inputs to CPU memory;
  * logits: tokens x vocab x bytes (Unsloth's fused loss ~2; transformers ~8: fp32 logits and their gradient).

Time per step = FLOPs / effective rate + a fixed cost per forward/backward pass.
  * FLOPs = 6 x (N + L h s) x T: N the parameters in matmuls (the input embedding is a lookup), L h s causal
    attention per token, T tokens per step; 6 = forward 2 + backward through the frozen weights 2 (input
    gradients only; LoRA's own are tiny) + the checkpointed forward recomputed 2 (4 without checkpointing).
  * The effective rate and the fixed cost are fitted to the H200 measurements (REFERENCES): two Unsloth runs
    that differ only in tokens per step (recipe, and recipe + packing) separate the per-token rate from the
    fixed cost, and the transformers run gives that backend's fixed cost. The fixed cost (streaming and
    dequantising the weights every pass, optimizer, launches) scales with the model's size and, on another
    GPU, with its memory bandwidth; the rate scales with its peak FLOP/s. The fitted rate lands near the
    H200's dense peak (~956 of 989 TFLOP/s): the extra tokens of the packed run cost matmul time only, so
    everything that did not grow with tokens went into the fixed cost. The walk-through's T4 time is an
    out-of-sample check (see :func:`calibration`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from medcot_ui.settings import DEMO_DATA_FILE, DEMO_MODEL_ID
from medcot_ui.training.config import RECIPE_DATASET, RunConfig
from medcot_ui.training.gpus import GPUS, REFERENCE_GPU
from medcot_ui.training.model_shape import RECIPE_SHAPE, ModelShape, is_on_this_machine, model_shape
from medcot_ui.training.presets import quick_demo

GIB = 2**30

# The recipe data's average row: 6,900 tokens/s x 0.94 s/step / 8 rows per step (the H200 measurement).
RECIPE_ROW_TOKENS = 810.0
# The longest micro-batches (what sets the peak) run about 1.5x the average row: rows go up to ~1,500 tokens.
PEAK_ROW_FACTOR = 1.5
CHARS_PER_TOKEN = 4.0  # Llama-3-style tokenizers average about 4 characters per English token
TEMPLATE_CHARS = 330   # the recipe prompt's instruction header around each row

# Measured on one H200 (shared/gpu/README.md: random-init 8 B of the real shape, synthetic rows of 300-1400
# tokens): the recipe as written (batch 2 x 4, seq 2048, 4-bit, r=16), and with packing.
REFERENCES = (
    {"what": "recipe, Unsloth, H200", "backend": "unsloth", "gpu": REFERENCE_GPU, "overrides": {},
     "seconds_per_step": 0.94, "tokens_per_s": 6900.0, "peak_gib": 6.5},
    {"what": "recipe + packing, Unsloth, H200", "backend": "unsloth", "gpu": REFERENCE_GPU,
     "overrides": {"training.packing": True}, "seconds_per_step": 1.43, "tokens_per_s": 11400.0, "peak_gib": 6.8},
    {"what": "recipe, transformers + bitsandbytes, H200", "backend": "transformers", "gpu": REFERENCE_GPU,
     "overrides": {}, "seconds_per_step": 2.04, "tokens_per_s": 3200.0, "peak_gib": 10.1},
)
# Out of sample (nothing is fitted to it): the walk-through's 60 steps took about 20 minutes on a Kaggle T4.
WALKTHROUGH_T4 = {"what": "recipe, Unsloth, T4 (walk-through, not fitted)", "backend": "unsloth",
                  "gpu": "T4 (16 GB)", "overrides": {}, "seconds_per_step": 20.0, "tokens_per_s": None,
                  "peak_gib": None}

# CPU: fp32 matmuls on small shapes, plus per-step fixed costs (Python, optimizer, logging, checkpoints)
# that dominate the demo model; set from demo runs on a shared 2-core machine (median 0.21 s/step measured).
# Training uses MEDCOT_CPU_THREADS threads on a CPU (jobs/train.py; default 1).
CPU_FLOPS_PER_THREAD = 8e9
CPU_STEP_OVERHEAD_S = 0.1
# GPU: the least a forward/backward pass costs (launches, Python), whatever the model.
GPU_PASS_FLOOR_S = 0.01
# Starting a training process, outside its steps and the checkpoint read: Python, imports, preparing the data,
# saving checkpoints and the adapter. CPU: the Quick demo reached its first step 5-6 s after it was queued
# (docs/BENCHMARKS.md, queue overhead). Unsloth: the recipe through the app on the H200 spent ~30 s outside its
# 40 steps (66.5-71.3 s wall, 0.94-0.99 s/step), ~6 s of it reading and quantising the checkpoint (the reference
# script's load_s), so ~24 s. transformers on a GPU was not measured: its imports are lighter than Unsloth's.
STARTUP_S = {"cpu": 5.0, "unsloth": 24.0, "transformers": 12.0}
# Reading a 16-bit checkpoint from local disk (and quantising it): 16 GB in ~6 s on the H200 machine.
LOAD_BYTES_PER_S = 2.7e9
CHECKPOINT_BYTES_PER_PARAM = 2  # a 16-bit checkpoint on disk (and what a first download fetches)
# Whole runs measured end to end, to check the estimate with its start included (nothing is fitted to the demo).
WHOLE_RUNS = (
    {"what": "Quick demo, CPU (2-core VM, queued)", "config": "demo", "gpu": None, "backend": "transformers",
     "seconds": 9.56},
    {"what": "recipe 40 steps, Unsloth, H200 (app)", "config": "recipe40", "gpu": REFERENCE_GPU, "backend": "unsloth",
     "seconds": 66.5},
)


def row_tokens(config: RunConfig) -> tuple[float, str]:
    """Average tokens per training row and how it was obtained."""
    data = config.data
    if data.source == "demo" and DEMO_DATA_FILE.exists():
        lines = [json.loads(x) for x in DEMO_DATA_FILE.read_text(encoding="utf-8").splitlines() if x.strip()]
        chars = sum(len(str(v)) for row in lines for v in row.values()) / max(len(lines), 1) + TEMPLATE_CHARS
        return chars / CHARS_PER_TOKEN, f"the demo data's average row ({chars:.0f} characters / {CHARS_PER_TOKEN:.0f})"
    if data.source == "hub" and data.dataset_id == RECIPE_DATASET:
        return RECIPE_ROW_TOKENS, "the recipe data's measured average row (6,900 tokens/s x 0.94 s / 8 rows)"
    return RECIPE_ROW_TOKENS, "assumed like the recipe data's average row (the Dataset tab shows the real counts)"


@dataclass
class Estimate:
    backend: str
    gpu: str
    params: int
    trainable: int
    tokens_per_step: float
    peak_micro_batch_tokens: float
    memory_gib: dict[str, float]
    seconds_per_step: float
    flops_per_step: float
    startup_s: float = 0.0  # before the first step: process, imports, data, reading the checkpoint, final save
    download_gb: float = 0.0  # the checkpoint a first run downloads (0 when it is on this machine)
    on_cpu: bool = False
    processes: int = 1  # data-parallel processes (GPUs): memory is per GPU, tokens per step for all of them
    basis: list[str] = field(default_factory=list)

    @property
    def total_gib(self) -> float:
        return sum(self.memory_gib.values())

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.seconds_per_step

    def run_seconds(self, steps: int) -> float:
        """The whole run: starting (model loading included) and ``steps`` steps; no download."""
        return self.startup_s + steps * self.seconds_per_step

    def fits(self) -> bool | None:
        return None if self.on_cpu else self.total_gib <= GPUS[self.gpu].memory_gib


def backend_for_gpu(requested: str) -> str:
    """The backend a GPU run of the config's ``model.backend`` uses."""
    # 'auto' picks Unsloth on a GPU machine with requirements-gpu.txt installed.
    return "unsloth" if requested in {"auto", "unsloth"} else "transformers"


def _flops(shape: ModelShape, tokens: float, seq: float, checkpointing: bool) -> float:
    matmul_params = shape.linear_params + shape.vocab * shape.hidden  # + the LM head; the embedding is a lookup
    return (6 if checkpointing else 4) * (matmul_params + shape.layers * shape.hidden * seq) * tokens


def _step_tokens(config: RunConfig) -> tuple[float, float, float, str]:
    """(tokens per step, tokens per row, tokens in the longest micro-batch, where the row length comes from)."""
    t, max_len = config.training, float(config.model.max_seq_length)
    avg_row, source = row_tokens(config)
    row = max_len if t.packing else min(avg_row, max_len)
    peak_row = max_len if t.packing else min(avg_row * PEAK_ROW_FACTOR, max_len)
    return (t.per_device_train_batch_size * t.gradient_accumulation_steps * row, row,
            t.per_device_train_batch_size * peak_row, source)


def _memory(config: RunConfig, shape: ModelShape, backend: str, micro_tokens: float, cpu: bool) -> dict[str, float]:
    m, lora, t = config.model, config.lora, config.training
    quantised = m.load_in_4bit and not cpu
    wide = 4 if cpu or t.precision == "fp32" else 2  # bytes of a 16-bit (or fp32) weight
    kbit_upcast = quantised and backend == "transformers"  # prepare_model_for_kbit_training: embeddings to fp32
    linear = shape.linear_params * (0.5 + 0.127 / 8 if quantised else wide)
    embeddings = (shape.embedding_params + shape.other_params) * (4 if kbit_upcast else wide)
    trainable = shape.lora_params(lora.r, lora.target_modules)
    optim_bytes = {"adamw_8bit": 2, "paged_adamw_8bit": 2, "adamw_torch": 8, "adafactor": 4}[t.optim]
    if cpu and optim_bytes == 2:
        optim_bytes = 8  # 8-bit optimizers need CUDA; training falls back to adamw_torch
    adapter = trainable * (4 + 4 + optim_bytes)
    layer_tokens = 2 * (10 * shape.hidden + 4 * shape.intermediate)  # one decoder layer's working set, per token
    gc = lora.gradient_checkpointing
    if gc == "false":
        acts = shape.layers * layer_tokens * micro_tokens
    elif gc == "unsloth" and backend == "unsloth":
        acts = layer_tokens * micro_tokens  # layer inputs offloaded to CPU memory
    else:
        acts = (layer_tokens + shape.layers * shape.hidden * wide) * micro_tokens
    logit_bytes = 2 if backend == "unsloth" else (8 if kbit_upcast or wide == 4 else 10)
    logits = micro_tokens * shape.vocab * logit_bytes
    return {"frozen weights": (linear + embeddings) / GIB, "LoRA + grads + optimizer": adapter / GIB,
            "activations": acts / GIB, "logits + loss": logits / GIB}


@lru_cache(maxsize=1)
def _fit() -> tuple[float, dict[str, float]]:
    """(effective FLOP/s on the reference GPU, fixed seconds per forward/backward pass per backend), from
    REFERENCES: the two Unsloth runs share their fixed cost, so their difference is all per-token work."""
    def flops_and_passes(ref: dict[str, Any]) -> tuple[float, int]:
        config = RunConfig().with_overrides(ref["overrides"])
        tokens, row, _, _ = _step_tokens(config)
        return _flops(RECIPE_SHAPE, tokens, row, checkpointing=True), config.training.gradient_accumulation_steps

    (f1, passes), (f2, _), _ = (flops_and_passes(r) for r in REFERENCES)
    rate = (f2 - f1) / (REFERENCES[1]["seconds_per_step"] - REFERENCES[0]["seconds_per_step"])
    fixed = {r["backend"]: (r["seconds_per_step"] - flops_and_passes(r)[0] / rate) / passes
             for r in (REFERENCES[0], REFERENCES[2])}
    return rate, fixed


def _rate_and_pass(shape: ModelShape, backend: str, gpu: str, cpu: bool) -> tuple[float, float]:
    """(effective FLOP/s, fixed seconds per forward/backward pass) on ``gpu`` or this CPU."""
    if cpu:
        return int(os.environ.get("MEDCOT_CPU_THREADS", "1")) * CPU_FLOPS_PER_THREAD, CPU_STEP_OVERHEAD_S
    ref_rate, fixed = _fit()
    ref_gpu, card = GPUS[REFERENCE_GPU], GPUS[gpu]
    per_pass = max(GPU_PASS_FLOOR_S, fixed[backend] * shape.linear_params / RECIPE_SHAPE.linear_params
                   * ref_gpu.bandwidth / card.bandwidth)
    return ref_rate * card.tflops / ref_gpu.tflops, per_pass


def estimate(config: RunConfig, gpu: str = REFERENCE_GPU, backend: str | None = None,
             cpu: bool = False) -> Estimate | None:
    """The estimate for ``config`` on ``gpu`` (or on this machine's CPU when ``cpu``); None for unknown models."""
    base = config.model.base_model
    shape, shape_source = model_shape(base)
    if shape is None:
        return None
    backend = "transformers" if cpu else backend_for_gpu(backend or config.model.backend)
    tokens, row, micro_tokens, row_source = _step_tokens(config)
    checkpointing = config.lora.gradient_checkpointing != "false"
    flops = _flops(shape, tokens, row, checkpointing)
    rate, per_pass = _rate_and_pass(shape, backend, gpu, cpu)
    checkpoint_bytes = shape.params * CHECKPOINT_BYTES_PER_PARAM
    est = Estimate(backend=backend, gpu="CPU" if cpu else gpu, params=shape.params,
                   trainable=shape.lora_params(config.lora.r, config.lora.target_modules),
                   tokens_per_step=tokens * config.training.num_processes, processes=config.training.num_processes,
                   peak_micro_batch_tokens=micro_tokens,
                   memory_gib=_memory(config, shape, backend, micro_tokens, cpu),
                   seconds_per_step=flops / rate + per_pass * config.training.gradient_accumulation_steps,
                   flops_per_step=flops, on_cpu=cpu,
                   startup_s=STARTUP_S["cpu" if cpu else backend] + checkpoint_bytes / LOAD_BYTES_PER_S,
                   download_gb=0.0 if base == DEMO_MODEL_ID or is_on_this_machine(base) else checkpoint_bytes / 1e9)
    est.basis = _basis(config, est, shape_source, row, row_source, rate, per_pass)
    return est


def _basis(config: RunConfig, est: Estimate, shape_source: str, row: float, row_source: str, rate: float,
           per_pass: float) -> list[str]:
    t, checkpointing = config.training, config.lora.gradient_checkpointing != "false"
    basis = [
        f"Parameters: {est.params / 1e9:.3g} B from {shape_source}; LoRA r={config.lora.r} on "
        f"{len(config.lora.target_modules)} module types = {est.trainable / 1e6:.3g} M trainable.",
        f"Tokens per step: {t.per_device_train_batch_size * t.gradient_accumulation_steps * t.num_processes} rows "
        f"(batch {t.per_device_train_batch_size} x accumulation {t.gradient_accumulation_steps}"
        + (f" x {t.num_processes} processes" if t.num_processes > 1 else "") + f") x {row:.0f} tokens"
        + (" (packed to the max sequence length)" if t.packing else f" per row: {row_source}") + ".",
        f"Peak memory at the longest micro-batch: {est.peak_micro_batch_tokens:.0f} tokens "
        f"({PEAK_ROW_FACTOR}x the average row, capped at the max sequence length).",
        f"Start: {STARTUP_S['cpu' if est.on_cpu else est.backend]:.0f} s for the process, imports, data and saves "
        f"(measured, see WHOLE_RUNS) + reading the {est.params * CHECKPOINT_BYTES_PER_PARAM / 1e9:.3g} GB "
        f"checkpoint at {LOAD_BYTES_PER_S / 1e9:.1f} GB/s.",
    ]
    if est.on_cpu:
        basis.append(f"CPU: {est.flops_per_step / 1e9:.3g} GFLOP per step at an assumed "
                     f"{CPU_FLOPS_PER_THREAD / 1e9:.0f} GFLOP/s per training thread plus {CPU_STEP_OVERHEAD_S} s "
                     "fixed per forward/backward (the demo preset measured 0.21 s/step on a shared 2-core machine).")
    else:
        basis.append(f"Time per step: {est.flops_per_step / 1e12:.3g} TFLOP ({6 if checkpointing else 4} x (params "
                     f"+ attention) x tokens) at an effective {rate / 1e12:.0f} TFLOP/s, plus {per_pass:.2f} s fixed "
                     f"per forward/backward ({est.backend}: weights streamed and dequantised each pass, optimizer, "
                     f"launches), both fitted to the H200 runs and scaled to the {est.gpu}'s peak FLOP/s and memory "
                     "bandwidth.")
    if t.num_processes > 1:
        basis.append(f"Data parallel: {t.num_processes} processes, one per GPU, each with a full copy of the model "
                     "(memory is per GPU) and its share of every step's rows, so a step takes about the time of one "
                     "process's share (the all-reduce of the small LoRA gradients is not counted).")
    return basis


@lru_cache(maxsize=1)
def calibration() -> tuple[dict[str, Any], ...]:
    """Estimate vs measurement for each reference run (H200 times match by construction: they are the fit).
    Computed once: it depends on constants only, and the Train tab shows it with every estimate."""
    out = []
    for ref in (*REFERENCES, WALKTHROUGH_T4):
        est = estimate(RunConfig().with_overrides(ref["overrides"]), gpu=ref["gpu"], backend=ref["backend"])
        row = {"what": ref["what"], "s/step measured": ref["seconds_per_step"],
               "s/step estimated": round(est.seconds_per_step, 2),
               "s/step error": est.seconds_per_step / ref["seconds_per_step"] - 1,
               "peak GiB measured": ref["peak_gib"], "peak GiB estimated": round(est.total_gib, 2),
               "peak error": est.total_gib / ref["peak_gib"] - 1 if ref["peak_gib"] else None,
               "tokens/s measured": ref["tokens_per_s"], "tokens/s estimated": round(est.tokens_per_s),
               "tokens/s error": est.tokens_per_s / ref["tokens_per_s"] - 1 if ref["tokens_per_s"] else None}
        out.append(row)
    return tuple(out)


def whole_run_calibration() -> tuple[dict[str, Any], ...]:
    """Estimated vs measured seconds for whole runs (start and model loading included); the demo's row only once
    the demo model is built (its shape is read from it)."""
    configs = {"demo": quick_demo(), "recipe40": RunConfig().with_overrides({"training.max_steps": 40})}
    out = []
    for ref in WHOLE_RUNS:
        config = configs[ref["config"]]
        est = estimate(config, gpu=ref["gpu"] or REFERENCE_GPU, backend=ref["backend"], cpu=ref["gpu"] is None)
        if est is None:
            continue
        seconds = est.run_seconds(config.training.max_steps)
        out.append({"what": ref["what"], "measured s": ref["seconds"], "estimated s": round(seconds, 1),
                    "error": seconds / ref["seconds"] - 1})
    return tuple(out)
