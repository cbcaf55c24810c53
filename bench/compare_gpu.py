"""Compare-tab speed on a CUDA GPU: both panes streaming vs plain transformers ``generate`` for one stream.

On a random-initialised model of DeepSeek-R1-Distill-Llama-8B's exact shape (``bench/make_random_8b.py``; decoding
speed, latency and memory do not depend on the weight values) with a rank-16 LoRA adapter on all seven projections
(the recipe's), for bf16 and bitsandbytes 4-bit weights, in one process:

* engine: the Compare engine (``medcot_ui.compare.engine``) as the tab runs it: one batched generate, row 0 base and row 1
  with the adapter (PEFT mixed-adapter batch), streamed into two panes; eager and with the compiled decode step;
* plain: ``AutoModelForCausalLM.generate`` of the base model for one stream, eager and (bf16) compiled.

Per row: time to first token, new tokens/s per stream after the first token, and peak GPU memory. The ceiling row
is memory bandwidth (measured here) over the bytes one decoding step must read (weights + KV cache).

    python bench/compare_gpu.py [--work DIR] [--tokens 512] [--modes bf16,4bit]

``--work`` holds (or gets) ``model/`` from make_random_8b.py and the adapter; MEDCOT_GPU_WORK is the default.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

QUESTION = ("A 61-year-old woman has involuntary urine loss when she coughs or sneezes, but none at night. On "
            "cystometry, what would her residual volume and detrusor contractions most likely show?")
GiB = 2**30


def make_adapter(model_dir: Path, out: Path) -> Path:
    """A rank-16 LoRA on all seven projections with random (non-zero) B, saved with PEFT."""
    if (out / "adapter_config.json").exists():
        return out
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from medcot_ui.training.config import LORA_TARGETS

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, device_map={"": 0})
    torch.manual_seed(3407)
    # init_lora_weights=False keeps nn.Linear's random init for B too, so the adapter really changes outputs.
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, target_modules=LORA_TARGETS, lora_dropout=0.0,
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    peft.save_pretrained(out)
    del model, peft
    torch.cuda.empty_cache()
    return out


def finished_run(model_dir: Path, adapter: Path, four_bit: bool) -> int:
    """A finished run row (in MEDCOT_HOME) whose base is the random 8B and whose adapter is ``adapter``."""
    import shutil

    from jobs.queue import claim_specific, enqueue, finish
    from medcot_ui.training.presets import recipe
    from medcot_ui.store import RunStatus

    config = recipe().with_overrides({"name": f"bench-{'4bit' if four_bit else 'bf16'}",
                                      "model.base_model": str(model_dir), "model.load_in_4bit": four_bit,
                                      "data.source": "demo", "data.split": "train"})
    run = enqueue(config)
    shutil.copytree(adapter, Path(run.output_dir) / "adapter")
    claim_specific(run.id, "bench")
    finish(run.id, RunStatus.succeeded)
    return run.id


def memory_bandwidth() -> float:
    """Device memory bandwidth (bytes/s) from a large device-to-device copy (read + write counted)."""
    import torch

    src = torch.empty(2 * GiB, dtype=torch.uint8, device="cuda").random_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * 2 * GiB / statistics.median(times)


def step_bytes(model: Any, tokens: int, rows: int) -> int:
    """Bytes one decoding step reads: every weight except the embedding table (one row), plus the KV cache."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    embed = base.get_input_embeddings().weight
    weights = base.get_memory_footprint() - embed.numel() * embed.element_size()
    c = base.config
    kv = 2 * c.num_hidden_layers * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 2
    return int(weights + kv * tokens * rows)


class TimingStreamer:
    """Records when each new token of a one-row generate arrives."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt = True

    def put(self, value: Any) -> None:
        if self._prompt:
            self._prompt = False
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def plain_generate(model: Any, tokenizer: Any, prompt: str, tokens: int, static: bool) -> dict[str, Any]:
    import torch

    enc = tokenizer(prompt, return_tensors="pt").to(model.device)
    streamer = TimingStreamer()
    kwargs = {"cache_implementation": "static"} if static else {}
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(**enc, max_new_tokens=tokens, do_sample=False, streamer=streamer,
                       pad_token_id=tokenizer.pad_token_id, **kwargs)
    times = streamer.times
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None
    return {"ttft_s": times[0] - start if times else None, "tok_s": rate, "tokens": len(times)}


def engine_compare(engine: Any, run_id: int, tokens: int) -> dict[str, Any]:
    from medcot_ui.compare.generation import GenerationSettings

    final = None
    seen_both_streaming = False
    for update in engine.compare(run_id, QUESTION, GenerationSettings(max_new_tokens=tokens, greedy=True)):
        final = update
        if update.phase == "generating" and update.base.tokens and update.tuned.tokens and \
                not (update.base.finished or update.tuned.finished):
            seen_both_streaming = True
    assert final is not None and final.phase == "done", "the comparison did not finish"
    return {"ttft_s": max(final.base.first_token_s, final.tuned.first_token_s),
            "tok_s": min(final.base.tokens_per_s or 0, final.tuned.tokens_per_s or 0),
            "tok_s_base": final.base.tokens_per_s, "tok_s_tuned": final.tuned.tokens_per_s,
            "tokens": min(final.base.tokens, final.tuned.tokens), "both_streamed": seen_both_streaming,
            "differ": final.base.token_ids != final.tuned.token_ids}


def measured(fn: Any, repeats: int) -> dict[str, Any]:
    """Peak memory over ``repeats`` calls; the run with the median rate is reported."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    results = [fn() for _ in range(repeats)]
    results.sort(key=lambda r: r["tok_s"] or 0)
    out = dict(results[len(results) // 2])
    out["peak_gib"] = torch.cuda.max_memory_allocated() / GiB
    return out


def bench_mode(mode: str, model_dir: Path, adapter: Path, tokens: int, repeats: int) -> list[dict[str, Any]]:
    """One base model load per mode: plain generate first (before any adapter), then the engine on the same weights."""
    import torch

    from medcot_ui.compare.engine import CompareEngine
    from medcot_ui.training.prompts import PromptFormat
    from medcot_ui.store import get_run

    four_bit = mode == "4bit"
    run_id = finished_run(model_dir, adapter, four_bit)
    config = get_run(run_id).run_config()
    rows: list[dict[str, Any]] = []
    # Everything that generates runs on the engine's model thread (CUDA-graph state is per thread).
    engine = CompareEngine(update_interval_s=0.05, precision="4bit" if four_bit else "16bit")
    on_model_thread = engine.model_thread.run
    t0 = time.perf_counter()
    loaded = engine.load_base(config)
    print(f"[{mode}] base loaded in {time.perf_counter() - t0:.0f} s, "
          f"{torch.cuda.memory_allocated() / GiB:.1f} GiB", flush=True)

    prompt = PromptFormat.from_data_settings(config.data).inference_prompt(QUESTION, loaded.tokenizer)
    compiled = [] if four_bit else [("compiled decode", True)]
    for label, static in [("eager", False)] + compiled:
        def plain() -> dict[str, Any]:
            return on_model_thread(lambda: plain_generate(loaded.model, loaded.tokenizer, prompt, tokens, static))

        t0 = time.perf_counter()
        plain()
        warm = time.perf_counter() - t0
        result = measured(plain, repeats)
        rows.append({"mode": mode, "path": f"plain generate, {label}", "streams": 1, "warmup_s": warm, **result})
        print(f"[{mode}] plain generate, {label}: {result}", flush=True)
    on_model_thread(torch._dynamo.reset)  # the engine's model (LoRA layers in) compiles on its own

    for label, fast in [("eager", False)] + compiled:
        engine.fast_decode = fast
        t0 = time.perf_counter()
        engine_compare(engine, run_id, tokens)  # warm-up: adapter attach, kernels, compilation at full length
        warm = time.perf_counter() - t0
        result = measured(lambda: engine_compare(engine, run_id, tokens), repeats)
        rows.append({"mode": mode, "path": f"engine, {label}", "streams": 2, "warmup_s": warm, **result})
        print(f"[{mode}] engine, {label}: {result}", flush=True)
    ceiling = memory_bandwidth() / step_bytes(engine._loaded.model, tokens + 200, 2)
    rows.append({"mode": mode, "path": "ceiling: bandwidth / bytes per step", "streams": 2, "tok_s": ceiling})
    on_model_thread(torch._dynamo.reset)
    engine.unload()
    return rows


def table(rows: list[dict[str, Any]], device: str, tokens: int) -> str:
    def f(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, (int, float)) and v is not None else "-"

    lines = [f"Compare engine on {device}, random-init 8B (R1-Distill-Llama shape), LoRA r=16 on 7 projections, "
             f"{tokens} new tokens, greedy", "",
             "| weights | path | streams | time to first token (s) | new tokens/s per stream | total tokens/s | "
             "peak GPU memory (GiB) | first call (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        total = r["tok_s"] * r["streams"] if r.get("tok_s") else None
        lines.append(f"| {r['mode']} | {r['path']} | {r['streams']} | {f(r.get('ttft_s'), '.3f')} | "
                     f"{f(r.get('tok_s'), '.1f')} | {f(total, '.1f')} | {f(r.get('peak_gib'), '.1f')} | "
                     f"{f(r.get('warmup_s'), '.0f')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("MEDCOT_GPU_WORK", "/tmp/medcot-gpu")))
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--modes", default="bf16,4bit")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    os.environ.setdefault("MEDCOT_HOME", tempfile.mkdtemp(prefix="medcot-bench-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from make_random_8b import build_model

    t0 = time.perf_counter()
    model_dir = build_model(args.work / "model")
    adapter = make_adapter(model_dir, args.work / "adapter")
    print(f"model and adapter ready in {time.perf_counter() - t0:.0f} s", flush=True)
    device = torch.cuda.get_device_name(0)
    rows: list[dict[str, Any]] = []
    for mode in args.modes.split(","):
        rows += bench_mode(mode.strip(), model_dir, adapter, args.tokens, args.repeats)
        gc.collect()  # PEFT-wrapped models hold reference cycles: free the weights before the next mode loads
        torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps({"device": device, "tokens": args.tokens, "rows": rows}, indent=2))
    print()
    print(table(rows, device, args.tokens))


if __name__ == "__main__":
    main()
