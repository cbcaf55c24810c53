"""Compare-tab speed on a CUDA GPU: both panes streaming vs plain transformers ``generate`` for one stream.

On a random-initialised model of DeepSeek-R1-Distill-Llama-8B's exact shape (``bench/make_random_8b.py``; decoding
speed, latency and memory do not depend on the weight values) with a rank-16 LoRA adapter on all seven projections
(the recipe's), bf16 weights, in one process and on one loaded model:

* first question: a fresh engine answers one question: load, compile warm-up, first token, as the tab's first
  user after a start sees it;
* engine: the Compare engine (``medcot_ui.compare.engine``) as the tab runs it, warmed up: one batched generate,
  row 0 base and row 1 with the adapter (row-scaled LoRA), compiled decode step, streamed into two panes;
* plain: ``generate`` of the same base weights (adapter layers taken out, transformers' SDPA attention back) for
  one stream, static cache, compiled by transformers (its default "reduce-overhead"), after its own warm-up.

Per row: time to first token, new tokens/s per stream after the first token, and peak GPU memory; then the ratio
engine per pane / plain. The ceiling row is memory bandwidth (measured here) over the bytes one step reads.

    python bench/compare_gpu.py [--work DIR] [--tokens 256] [--repeats 3] [--json out.json]
    python bench/compare_gpu.py --prepare        # only build model/ and adapter/ (before tests use them)

``--work`` holds (or gets) ``model/`` from make_random_8b.py and the adapter; MEDCOT_GPU_WORK is the default.
"""

from __future__ import annotations

import argparse
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

    cuda = torch.cuda.is_available()  # the evaluation bench's --tiny mode builds its adapter on the CPU
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if cuda else torch.float32,
                                                 device_map={"": 0} if cuda else None)
    torch.manual_seed(3407)
    # init_lora_weights=False keeps nn.Linear's random init for B too, so the adapter really changes outputs.
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, target_modules=LORA_TARGETS, lora_dropout=0.0,
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    peft.save_pretrained(out)
    del model, peft
    if cuda:
        torch.cuda.empty_cache()
    return out


def finished_run(model_dir: Path, adapter: Path, four_bit: bool) -> int:
    """A finished run row (in MEDCOT_HOME) whose base is the random 8B and whose adapter is ``adapter``."""
    import shutil

    from jobs.queue import claim_specific, finish
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.training.presets import recipe
    from medcot_ui.store import RunStatus

    config = recipe().with_overrides({"name": f"bench-{'4bit' if four_bit else 'bf16'}",
                                      "model.base_model": str(model_dir), "model.load_in_4bit": four_bit,
                                      "data.source": "demo", "data.split": "train"})
    run = enqueue("train", config)
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


def plain_generate(model: Any, tokenizer: Any, prompt: str, tokens: int, rows: int = 1) -> dict[str, Any]:
    """Plain ``generate`` of ``rows`` copies of the prompt, static cache (compiled by transformers on CUDA)."""
    import torch

    enc = tokenizer([prompt] * rows, return_tensors="pt").to(model.device)
    streamer = TimingStreamer()
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(**enc, max_new_tokens=tokens, do_sample=False, streamer=streamer,
                       pad_token_id=tokenizer.pad_token_id, cache_implementation="static")
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


def first_question(engine: Any, run_id: int, tokens: int) -> dict[str, Any]:
    """A fresh engine's first comparison: seconds from the call to each phase, as the tab's user waits."""
    from medcot_ui.compare.generation import GenerationSettings

    start, phases, first_token = time.perf_counter(), {}, None
    for update in engine.compare(run_id, QUESTION, GenerationSettings(max_new_tokens=tokens, greedy=True)):
        now = time.perf_counter() - start
        key = update.message.split("…")[0].split(" (")[0][:60]
        if key not in phases:
            phases[key] = round(now, 1)
            print(f"  [{now:6.1f} s] {update.message[:150]}", flush=True)
        if first_token is None and update.base and update.tuned and update.base.tokens and update.tuned.tokens:
            first_token = now
    return {"first_token_s": first_token, "total_s": time.perf_counter() - start, "phases": phases,
            "decode": engine.decode_status.message}


def bench(model_dir: Path, adapter: Path, tokens: int, repeats: int) -> list[dict[str, Any]]:
    """One base model load: the engine's first question and warm runs (grouped decode attention, as the tab runs
    it; then with transformers' SDPA attention), then plain generate on the same weights, one row and two."""
    import torch

    from medcot_ui.compare.engine import CompareEngine
    from medcot_ui.inference.fast_decode import Decoder
    from medcot_ui.store import get_run
    from medcot_ui.training.prompts import PromptFormat

    run_id = finished_run(model_dir, adapter, False)
    engine = CompareEngine(update_interval_s=0.05, precision="16bit")
    first = first_question(engine, run_id, tokens)
    print(f"first question on a fresh engine: {first}", flush=True)
    result = measured(lambda: engine_compare(engine, run_id, tokens), repeats)
    rows = [{"path": "engine, both panes (warm), grouped decode attention", "streams": 2,
             "first_question_s": first["first_token_s"], "first_question": first, **result}]
    print(f"engine: {result}", flush=True)

    loaded = engine._loaded
    loaded.model.set_attn_implementation("sdpa")  # transformers' own attention, as plain generate has it
    engine.model_thread.run(torch._dynamo.reset)  # graphs compiled with the other attention must go
    loaded.decoder = Decoder(loaded.model, rows=2, compiled=True, grouped_attention=False)
    t0 = time.perf_counter()
    engine_compare(engine, run_id, tokens)  # compiles again
    result = measured(lambda: engine_compare(engine, run_id, tokens), repeats)
    rows.append({"path": "engine, both panes (warm), SDPA attention", "streams": 2,
                 "warmup_s": time.perf_counter() - t0, **result})
    print(f"engine with SDPA: {result}", flush=True)

    loaded.lora.detach()  # the plain base model: the same weights without the adapter's layers
    engine.model_thread.run(torch._dynamo.reset)  # plain generate compiles its own graphs
    run_config = get_run(run_id).run_config()
    prompt = PromptFormat.from_data_settings(run_config.data).inference_prompt(QUESTION, loaded.tokenizer)
    for streams in (1, 2):  # two rows: what a batch of two costs without any adapter (where the time goes)
        def plain(streams: int = streams) -> dict[str, Any]:
            return engine.model_thread.run(
                lambda: plain_generate(loaded.model, loaded.tokenizer, prompt, tokens, streams))

        t0 = time.perf_counter()
        plain()
        warm = time.perf_counter() - t0
        result = measured(plain, repeats)
        rows.append({"path": f"plain generate, {'one stream' if streams == 1 else 'two rows'}, compiled",
                     "streams": streams, "warmup_s": warm, **result})
        print(f"plain x{streams}: {result}", flush=True)
    ceiling = memory_bandwidth() / step_bytes(loaded.model, tokens + 200, 2)
    rows.append({"path": "ceiling: bandwidth / bytes per step", "streams": 2, "tok_s": ceiling})
    engine.model_thread.run(torch._dynamo.reset)
    engine.unload()
    return rows


def table(rows: list[dict[str, Any]], device: str, tokens: int) -> str:
    def f(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, (int, float)) and v is not None else "-"

    lines = [f"Compare engine on {device}, random-init 8B (R1-Distill-Llama shape), bf16, LoRA r=16 on 7 projections, "
             f"{tokens} new tokens, greedy", "",
             "| path | streams | time to first token (s) | new tokens/s per stream | total tokens/s | "
             "peak GPU memory (GiB) | first call (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        total = r["tok_s"] * r["streams"] if r.get("tok_s") else None
        first = r.get("first_question_s", r.get("warmup_s"))
        lines.append(f"| {r['path']} | {r['streams']} | {f(r.get('ttft_s'), '.3f')} | {f(r.get('tok_s'), '.1f')} | "
                     f"{f(total, '.1f')} | {f(r.get('peak_gib'), '.1f')} | {f(first, '.1f')} |")
    plain = next((r["tok_s"] for r in rows if r["path"].startswith("plain generate, one stream")), None)
    lines.append("")
    for r in rows:
        if r["path"].startswith("engine") and r.get("tok_s") and plain:
            lines.append(f"{r['path']}: per pane / plain one stream **{r['tok_s'] / plain:.3f}x** "
                         f"({r['tok_s']:.1f} vs {plain:.1f} tokens/s)")
    first = rows[0]["first_question"]
    lines.append(f"first question on a freshly loaded model: first token after {f(first['first_token_s'], '.1f')} s "
                 f"(phases, seconds from the call: {first['phases']}); decoding: {first['decode']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("MEDCOT_GPU_WORK", "/tmp/medcot-gpu")))
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prepare", action="store_true", help="only build the model and the adapter")
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
    if args.prepare:
        return
    device = torch.cuda.get_device_name(0)
    rows = bench(model_dir, adapter, args.tokens, args.repeats)
    if args.json:
        args.json.write_text(json.dumps({"device": device, "tokens": args.tokens, "rows": rows}, indent=2))
    print()
    print(table(rows, device, args.tokens))


if __name__ == "__main__":
    main()
