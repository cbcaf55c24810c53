"""Evaluation throughput: a MedQA-size paired evaluation through three generation paths, side by side in one call.

Workload (the issue's): ``--questions`` prompts of about ``--prompt-tokens`` tokens (MedQA-USMLE test: 1,273), each
answered by the base side and the tuned side (rank-16 LoRA on the same weights), ``--max-new`` 1024, each answer's
length drawn uniformly from ``--min-answer`` to ``--max-new`` and forced (a random model never emits EOS).

* old: the evaluation job's earlier default, ``answer_batch``-style fixed batches of 8 (``generate``, eager, each
  batch runs to its longest answer), on ``--old-questions`` questions;
* cb: transformers' continuous batching (``init_continuous_batching``, per-request ``max_new_tokens``, EOS off;
  the tuned side with the adapter on every row), on ``--cb-questions`` questions, once per ``--cb-graphs`` setting;
* engine: ``medcot_ui.inference.batch_engine`` (static slots chosen from free memory, compiled CUDA-graph decode,
  continuous refill, both sides in shared batches), on all questions; its time includes loading the model and the
  adapter and compiling;
* merged: the same engine without per-row LoRA: the base side first, then the adapter merged into the bf16 weights
  (timed) and the tuned side, on all questions.

Useful tokens/s counts each answer's forced length only (tokens a fixed batch spends past a shorter answer's end are
waste). Peak memory is torch's peak allocated per path. Writes OUT_DIR/eval_throughput.json.

    python bench/eval_throughput.py [OUT_DIR] [--work DIR] [--questions 1273] [--paths old cb engine merged]
    python bench/eval_throughput.py OUT_DIR --tiny     # CPU check with the demo model (numbers mean nothing)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PATHS = ("old", "cb", "engine", "merged")


def prepare(work: Path, tiny: bool) -> tuple[Path, Path]:
    """The model folder and a LoRA adapter for it (built when missing)."""
    from compare_gpu import make_adapter

    if tiny:
        from medcot_ui.training.models import build_demo_model

        model_dir = work / "demo-model"
        if not (model_dir / "config.json").exists():
            build_demo_model(model_dir)
    else:
        from make_random_8b import build_model

        model_dir = build_model(work / "model")
    return model_dir, make_adapter(model_dir, work / ("demo-adapter" if tiny else "adapter"))


def workload(n: int, prompt_tokens: int, min_answer: int, max_new: int, vocab: int, seed: int = 3407
             ) -> list[tuple[list[int], int]]:
    """``n`` prompts of synthetic ids around ``prompt_tokens`` long (+-20 %), each with its forced answer length."""
    rng = random.Random(seed)
    spread = max(1, prompt_tokens // 5)
    return [([rng.randrange(10, vocab) for _ in range(rng.randint(prompt_tokens - spread, prompt_tokens + spread))],
             rng.randint(min_answer, max_new)) for _ in range(n)]


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None


def _row(path: str, requests: int, useful: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"path": path, "requests": requests, "useful_tokens": useful, "seconds": round(seconds, 1),
            "tokens_per_s": round(useful / seconds, 1), "peak_gb": _peak_gb(), **extra}


def old_path(loaded: Any, lora: Any, work: list[tuple[list[int], int]], batch: int = 8) -> dict[str, Any]:
    """Fixed batches of ``batch`` per side, left-padded, each ``generate`` running to its batch's longest answer."""
    import torch

    model, pad = loaded.model, loaded.tokenizer.pad_token_id or 0
    device = next(model.parameters()).device
    _peak_reset()
    _sync()
    start, useful = time.perf_counter(), 0
    for tuned in (False, True):
        lora.set_rows([tuned] * lora.rows)
        for i in range(0, len(work), batch):
            group = work[i: i + batch]
            width = max(len(ids) for ids, _ in group)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p, _ in group], device=device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _ in group], device=device)
            longest = max(n for _, n in group)
            with torch.inference_mode():
                model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=longest, min_new_tokens=longest,
                               do_sample=False, pad_token_id=pad, temperature=None, top_p=None, top_k=None)
            useful += sum(n for _, n in group)
    _sync()
    return _row("old: fixed batches of 8 (generate)", 2 * len(work), useful, time.perf_counter() - start,
                batch=batch)


def cb_path(loaded: Any, lora: Any, work: list[tuple[list[int], int]], cuda_graph: bool) -> dict[str, Any]:
    """transformers' continuous batching, one manager per side (it has no per-request adapter)."""
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    model = loaded.model
    config = GenerationConfig(do_sample=False, max_new_tokens=max(n for _, n in work), eos_token_id=-1,
                              pad_token_id=loaded.tokenizer.pad_token_id or 0)
    cb_config = ContinuousBatchingConfig(use_cuda_graph=cuda_graph)
    _peak_reset()
    _sync()
    start, useful = time.perf_counter(), 0
    for tuned in (False, True):
        lora.set_rows([tuned] * lora.rows)  # continuous batching flattens the batch into one row: row 0's scale
        with model.continuous_batching_context_manager(generation_config=config, continuous_batching_config=cb_config,
                                                       block=True, timeout=30) as manager:
            for i, (ids, n) in enumerate(work):
                manager.add_request(ids, request_id=f"r{i}", max_new_tokens=n, eos_token_id=-1)
            for _ in range(len(work)):
                result = manager.get_result(timeout=600)
                while result is not None and not result.is_finished():
                    result = manager.get_result(timeout=600)
                if result is None:
                    raise RuntimeError("continuous batching returned no result within 600 s")
                useful += len(result.generated_tokens)
    _sync()
    return _row(f"cb: transformers continuous batching (cuda graphs {'on' if cuda_graph else 'off'})", 2 * len(work),
                useful, time.perf_counter() - start)


def engine_path(model_dir: Path, adapter: Path, work: list[tuple[list[int], int]], max_new: int,
                merged: bool = False) -> dict[str, Any]:
    """The batch engine from a cold start: load, inject, choose slots, compile, answer both sides: in shared
    batches (the adapter per row), or ``merged``: the base side, then the tuned side with the adapter merged."""
    import torch

    from medcot_ui.inference.batch_engine import BatchEngine, EngineStats, Request, cache_length, choose_slots
    from medcot_ui.inference.eos import eos_ids
    from medcot_ui.inference.loading import load_model
    from medcot_ui.inference.row_lora import RowLoRA, merge_into, read_adapter

    _peak_reset()
    start = time.perf_counter()
    loaded = load_model(str(model_dir), quantised=False)
    length = cache_length(max(len(ids) for ids, _ in work), max_new)
    requests = [Request((i, side), ids, side == "tuned" and not merged, max_new, forced_tokens=n)
                for i, (ids, n) in enumerate(work) for side in ("base", "tuned")]
    groups = ([[r for r in requests if r.key[1] == side] for side in ("base", "tuned")] if merged else [requests])
    slots = choose_slots(loaded.model, length, len(groups[0]))
    lora = None if merged else RowLoRA(loaded.model, read_adapter(adapter), slots)
    compiled = torch.cuda.is_available()
    engine = BatchEngine(loaded.model, eos_ids(loaded.model, loaded.tokenizer), slots, length, lora,
                         compiled=compiled)
    loaded_s = time.perf_counter() - start
    total_stats = EngineStats()
    for number, group in enumerate(groups):
        if number == 1:
            merge_into(loaded.model, read_adapter(adapter))  # timed: part of the merged path's cost
        stats = engine.run(group, lambda done: None)
        for key in ("tokens", "steps", "prefills", "times_refilled"):
            setattr(total_stats, key, getattr(total_stats, key) + getattr(stats, key))
    _sync()
    total = time.perf_counter() - start
    generating = total - loaded_s
    name = ("merged: batch engine, base side then tuned side merged" if merged
            else "engine: batch engine (static slots, refill)")
    return _row(name, len(requests), total_stats.tokens, total,
                slots=slots, load_s=round(loaded_s, 1), generate_s=round(generating, 1),
                generate_tokens_per_s=round(total_stats.tokens / generating, 1), compiled=compiled,
                refilled=total_stats.times_refilled, steps=total_stats.steps, prefills=total_stats.prefills)


def measure(path: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One path's rows, in this process (main runs each path in a process of its own: a cold start, and the GPU
    memory of one path never counts against the next)."""
    from transformers import AutoTokenizer

    from medcot_ui.inference.loading import load_model
    from medcot_ui.inference.row_lora import RowLoRA, read_adapter

    model_dir, adapter = prepare(args.work, args.tiny)
    work = workload(args.questions, args.prompt_tokens, args.min_answer, args.max_new,
                    len(AutoTokenizer.from_pretrained(model_dir)))
    if path in ("engine", "merged"):
        return [engine_path(model_dir, adapter, work, args.max_new, merged=path == "merged")]
    loaded = load_model(str(model_dir), quantised=False)
    lora = RowLoRA(loaded.model, read_adapter(adapter), 8)
    if path == "old":
        return [old_path(loaded, lora, work[: args.old_questions])]
    return [cb_path(loaded, lora, work[: args.cb_questions], graphs == "on") for graphs in args.cb_graphs]


def table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'path':<58} {'requests':>8} {'tokens/s':>10} {'seconds':>8} {'peak GB':>8}")
    for row in rows:
        print(f"{row['path']:<58} {row['requests']:>8} {row['tokens_per_s']:>10.1f} {row['seconds']:>8.1f} "
              f"{row['peak_gb'] if row['peak_gb'] is not None else '-':>8}")
    old = next((r for r in rows if r["path"].startswith("old")), None)
    for row in rows:
        if old and row is not old:
            print(f"{row['path'].split(':')[0]} / old: {row['tokens_per_s'] / old['tokens_per_s']:.1f}x")
    engine = next((r for r in rows if r["path"].startswith("engine")), None)
    merged = next((r for r in rows if r["path"].startswith("merged")), None)
    if engine and merged:  # the choice of evaluate/engine_answers.MERGE_TUNED
        print(f"merged / engine (per-row LoRA): {merged['tokens_per_s'] / engine['tokens_per_s']:.3f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path(os.environ.get("OUT", "/tmp/medcot-gpu-out")))
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("MEDCOT_GPU_WORK", "/tmp/medcot-gpu")))
    parser.add_argument("--questions", type=int, default=1273)
    parser.add_argument("--old-questions", type=int, default=8, help="questions through the old path (slow)")
    parser.add_argument("--cb-questions", type=int, default=64, help="questions through continuous batching")
    parser.add_argument("--cb-graphs", nargs="+", choices=("on", "off"), default=["off"])
    parser.add_argument("--prompt-tokens", type=int, default=250)
    parser.add_argument("--min-answer", type=int, default=200)
    parser.add_argument("--max-new", type=int, default=1024)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=["engine", "old", "cb"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child measuring one path
    parser.add_argument("--tiny", action="store_true", help="the demo model on the CPU (checks the script only)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    if not args.tiny and not torch.cuda.is_available():
        parser.error("no CUDA GPU: run on a GPU machine, or pass --tiny to check the script on the CPU")
    if args.one:
        (args.out / f"eval-{args.paths[0]}.json").write_text(json.dumps(measure(args.paths[0], args)))
        return 0
    prepare(args.work, args.tiny)
    rows: list[dict[str, Any]] = []
    own = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--paths")]
    for path in args.paths:
        child = [a for a in own if a not in PATHS]
        subprocess.run([sys.executable, __file__, *child, "--paths", path, "--one"], check=True)
        rows += json.loads((args.out / f"eval-{path}.json").read_text())
        print(json.dumps(rows[-1]), flush=True)
    table(rows)
    result = {"model": "demo (tiny, CPU)" if args.tiny else "random-init DeepSeek-R1-Distill-Llama-8B shape, bf16",
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU",
              "torch": torch.__version__, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    target = args.out / "eval_throughput.json"
    target.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
