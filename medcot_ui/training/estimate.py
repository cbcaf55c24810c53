"""How much GPU memory and how long per step a run config will take, with the basis spelled out.

Model: the parameter count comes from the model's own ``config.json`` when it is on this machine (the demo
model, a local folder, or the Hugging Face cache), else from a table of known shapes (the recipe's 8 B model).

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
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from medcot_ui.training.config import RECIPE_DATASET, RECIPE_MODEL, RunConfig
from medcot_ui.hosting.settings import DEMO_DATA_FILE, DEMO_MODEL_ID, get_settings

GIB = 2**30


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    head_dim: int = 0  # 0 = hidden // heads
    tied: bool = False

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one decoder block (Llama naming)."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.hd, self.kv_heads * self.hd
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)  # input embedding + LM head

    @property
    def other_params(self) -> int:
        return self.hidden * (2 * self.layers + 1)  # RMS norms

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params + self.other_params

    def lora_params(self, r: int, targets: list[str]) -> int:
        shapes = self.linear_shapes()
        return self.layers * sum(r * (a + b) for name, (a, b) in shapes.items() if name in targets)


# Llama-3.1-8B architecture (shared/docs/recipe.md): about 8.03 B parameters.
RECIPE_SHAPE = ModelShape(hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336, vocab=128256)
KNOWN_SHAPES: dict[str, ModelShape] = {
    RECIPE_MODEL.lower(): RECIPE_SHAPE,
    "deepseek-ai/deepseek-r1-distill-llama-8b": RECIPE_SHAPE,
    "unsloth/deepseek-r1-distill-llama-8b-unsloth-bnb-4bit": RECIPE_SHAPE,
    "unsloth/deepseek-r1-distill-llama-8b-bnb-4bit": RECIPE_SHAPE,
    "meta-llama/llama-3.1-8b-instruct": RECIPE_SHAPE,
    "meta-llama/llama-3.1-8b": RECIPE_SHAPE,
}


@dataclass(frozen=True)
class Gpu:
    name: str
    tflops: float      # dense bf16 (fp16 on T4) tensor-core peak
    bandwidth: float   # memory bandwidth, TB/s
    memory_gib: float  # what the card offers to PyTorch, roughly


GPUS: dict[str, Gpu] = {g.name: g for g in (
    Gpu("H200 (141 GB)", 989.4, 4.8, 139.8), Gpu("H100 SXM (80 GB)", 989.4, 3.35, 79.2),
    Gpu("H100 PCIe (80 GB)", 756.0, 2.0, 79.2), Gpu("A100 (80 GB)", 312.0, 2.04, 79.2),
    Gpu("A100 (40 GB)", 312.0, 1.56, 39.4), Gpu("L40S (48 GB)", 362.0, 0.864, 44.4),
    Gpu("RTX 4090 (24 GB)", 165.2, 1.008, 23.6), Gpu("A10 (24 GB)", 125.0, 0.6, 22.1),
    Gpu("L4 (24 GB)", 121.0, 0.3, 22.0), Gpu("T4 (16 GB)", 65.0, 0.32, 14.6))}
REFERENCE_GPU = "H200 (141 GB)"

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


def _shape_from_config(cfg: dict[str, Any]) -> ModelShape | None:
    try:
        return ModelShape(hidden=int(cfg["hidden_size"]), layers=int(cfg["num_hidden_layers"]),
                          heads=int(cfg["num_attention_heads"]),
                          kv_heads=int(cfg.get("num_key_value_heads") or cfg["num_attention_heads"]),
                          intermediate=int(cfg["intermediate_size"]), vocab=int(cfg["vocab_size"]),
                          head_dim=int(cfg.get("head_dim") or 0), tied=bool(cfg.get("tie_word_embeddings")))
    except (KeyError, TypeError, ValueError):
        return None


def shape_from_config(model_config: Any) -> ModelShape | None:
    """The shape of a transformers model config (a loaded model's ``.config`` or a config.json dict), counted as
    the estimate counts it; None when a field is missing. The Compare tab's GPU memory budget uses it."""
    cfg = model_config if isinstance(model_config, dict) else model_config.get_text_config().to_dict()
    return _shape_from_config(cfg)


def _local_config_json(model_id: str) -> Path | None:
    if model_id == DEMO_MODEL_ID:
        path = get_settings().demo_model_dir / "config.json"
        return path if path.exists() else None
    if Path(model_id).is_dir():
        path = Path(model_id) / "config.json"
        return path if path.exists() else None
    try:  # the Hugging Face cache, without touching the network
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # noqa: BLE001 - an odd id is "not cached", not an error
        return None
    return Path(cached) if isinstance(cached, str) else None


def model_shape(model_id: str) -> tuple[ModelShape | None, str]:
    """The model's shape and where it came from (its config.json on this machine, or the known-shapes table)."""
    path = _local_config_json(model_id)
    if path is not None:
        try:
            shape = _shape_from_config(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            shape = None
        if shape is not None:
            return shape, f"the model's config.json on this machine ({path})"
    if model_id.lower() in KNOWN_SHAPES:
        return KNOWN_SHAPES[model_id.lower()], "the known shape of the Llama-3.1-8B architecture"
    return None, "no config.json on this machine and not a known model"


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
    on_cpu: bool = False
    basis: list[str] = field(default_factory=list)

    @property
    def total_gib(self) -> float:
        return sum(self.memory_gib.values())

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.seconds_per_step

    def fits(self) -> bool | None:
        return None if self.on_cpu else self.total_gib <= GPUS[self.gpu].memory_gib


def _backend_for_gpu(requested: str) -> str:
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


def estimate(config: RunConfig, gpu: str = REFERENCE_GPU, backend: str | None = None,
             cpu: bool = False) -> Estimate | None:
    """The estimate for ``config`` on ``gpu`` (or on this machine's CPU when ``cpu``); None for unknown models."""
    shape, shape_source = model_shape(config.model.base_model)
    if shape is None:
        return None
    backend = "transformers" if cpu else _backend_for_gpu(backend or config.model.backend)
    t = config.training
    tokens, row, micro_tokens, row_source = _step_tokens(config)
    rows_per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps
    checkpointing = config.lora.gradient_checkpointing != "false"
    flops = _flops(shape, tokens, row, checkpointing)
    if cpu:
        import os

        threads = int(os.environ.get("MEDCOT_CPU_THREADS", "1"))
        rate, per_pass = threads * CPU_FLOPS_PER_THREAD, CPU_STEP_OVERHEAD_S
    else:
        ref_rate, fixed = _fit()
        ref_gpu, card = GPUS[REFERENCE_GPU], GPUS[gpu]
        rate = ref_rate * card.tflops / ref_gpu.tflops
        per_pass = max(GPU_PASS_FLOOR_S, fixed[backend] * shape.linear_params / RECIPE_SHAPE.linear_params
                       * ref_gpu.bandwidth / card.bandwidth)
    seconds = flops / rate + per_pass * t.gradient_accumulation_steps
    est = Estimate(backend=backend, gpu="CPU" if cpu else gpu, params=shape.params,
                   trainable=shape.lora_params(config.lora.r, config.lora.target_modules), tokens_per_step=tokens,
                   peak_micro_batch_tokens=micro_tokens,
                   memory_gib=_memory(config, shape, backend, micro_tokens, cpu), seconds_per_step=seconds,
                   flops_per_step=flops, on_cpu=cpu)
    est.basis = [
        f"Parameters: {shape.params / 1e9:.3g} B from {shape_source}; LoRA r={config.lora.r} on "
        f"{len(config.lora.target_modules)} module types = {est.trainable / 1e6:.3g} M trainable.",
        f"Tokens per step: {rows_per_step} rows (batch {t.per_device_train_batch_size} x accumulation "
        f"{t.gradient_accumulation_steps}) x {row:.0f} tokens"
        + (" (packed to the max sequence length)" if t.packing else f" per row: {row_source}") + ".",
        f"Peak memory at the longest micro-batch: {micro_tokens:.0f} tokens "
        f"({PEAK_ROW_FACTOR}x the average row, capped at the max sequence length).",
    ]
    if cpu:
        est.basis.append(f"CPU: {flops / 1e9:.3g} GFLOP per step at an assumed {CPU_FLOPS_PER_THREAD / 1e9:.0f} "
                         f"GFLOP/s per training thread plus {CPU_STEP_OVERHEAD_S} s fixed cost per forward/backward "
                         "(the demo preset measured 0.21 s/step on a shared 2-core machine).")
    else:
        est.basis.append(f"Time: {flops / 1e12:.3g} TFLOP per step ({6 if checkpointing else 4} x (params + "
                         f"attention) x tokens) at an effective {rate / 1e12:.0f} TFLOP/s, plus {per_pass:.2f} s "
                         f"fixed per forward/backward ({backend}: weights streamed and dequantised each pass, "
                         f"optimizer, launches), both fitted to the H200 runs and scaled to the {gpu}'s peak "
                         "FLOP/s and memory bandwidth.")
    return est


def detected_gpu() -> str | None:
    """The GPUS entry matching this machine's CUDA device, if any."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        name = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - no torch or a broken driver: plan as if no GPU
        return None
    for key, short in (("H200", "H200 (141 GB)"), ("H100 PCIe", "H100 PCIe (80 GB)"), ("H100", "H100 SXM (80 GB)"),
                       ("A100", "A100 (80 GB)"), ("L40S", "L40S (48 GB)"), ("4090", "RTX 4090 (24 GB)"),
                       ("A10", "A10 (24 GB)"), ("L4", "L4 (24 GB)"), ("T4", "T4 (16 GB)")):
        if key in name:
            return short
    return None


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


def _gib(value: float) -> str:
    return f"{value * 1024:.0f} MiB" if value < 0.1 else f"{value:.1f} GiB"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def describe(config: RunConfig, gpu: str | None = None, cuda: bool | None = None) -> str:
    """Markdown: the estimate for this machine (or a GPU to plan for), both backends, and the basis."""
    if cuda is None:
        from medcot_ui.training.models import cuda_available

        cuda = cuda_available()
    gpu = gpu if gpu in GPUS else (detected_gpu() or REFERENCE_GPU)
    lines: list[str] = []
    steps = config.training.max_steps
    if not cuda:
        cpu_est = estimate(config, cpu=True)
        lines.append("**This machine has no CUDA GPU**: training runs on the CPU in fp32 (4-bit loading and 8-bit "
                     "optimizers are switched off), with the transformers backend.")
        if cpu_est is not None:
            total = f", about {_duration(cpu_est.seconds_per_step * steps)} for {steps} steps" if steps else ""
            lines.append(f"On this CPU: about **{_duration(cpu_est.seconds_per_step)}/step**{total}, "
                         f"{_gib(cpu_est.total_gib)} of RAM for the model and its training state."
                         + (" An 8 B model is impractical on a CPU: use a GPU machine."
                            if cpu_est.params > 1e9 else ""))
        lines.append(f"\nPlanning for a GPU ({gpu}):")
    ests = {b: estimate(config, gpu=gpu, backend=b) for b in ("unsloth", "transformers")}
    if ests["unsloth"] is None:
        shape_note = model_shape(config.model.base_model)[1]
        return "\n".join(lines + [f"No estimate for `{config.model.base_model}`: {shape_note}. Put a downloaded "
                                  "model folder in Base model to get one."])
    chosen = _backend_for_gpu(config.model.backend)
    lines.append("| backend | GPU memory (peak) | time per step | tokens/s | " + (f"{steps} steps |" if steps else "|"))
    lines.append("|---|---|---|---|" + ("---|" if steps else ""))
    for name, est in ests.items():
        fits = "" if est.fits() else f" -- **does not fit in {GPUS[gpu].memory_gib:.0f} GiB**"
        mark = " (this config)" if name == chosen else ""
        label = {"unsloth": "Unsloth", "transformers": "transformers + bitsandbytes"}[name]
        lines.append(f"| {label}{mark} | {_gib(est.total_gib)}{fits} | {_duration(est.seconds_per_step)} | "
                     f"{est.tokens_per_s:,.0f} |" + (f" {_duration(est.seconds_per_step * steps)} |" if steps else ""))
    est = ests[chosen]
    parts = ", ".join(f"{k} {_gib(v)}" for k, v in est.memory_gib.items())
    lines += ["", f"Memory breakdown ({chosen}): {parts}. The CUDA context adds ~0.5-1 GiB outside PyTorch.",
              "", "Basis: " + " ".join(est.basis),
              "", "Calibration vs measurements: " + "; ".join(
                  f"{c['what']}: {c['s/step estimated']} s/step vs {c['s/step measured']} "
                  f"({c['s/step error']:+.0%})" + (f", {c['peak GiB estimated']} GiB vs {c['peak GiB measured']} "
                                                   f"({c['peak error']:+.0%})" if c["peak error"] is not None else "")
                  for c in calibration()) + "."]
    return "\n".join(lines)
