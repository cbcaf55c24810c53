"""Evaluation throughput: generated tokens/s of the evaluation job's batched generation vs plain ``generate``.

For batch sizes 1, 8 and 32, on the base side (plain base weights) and the tuned side (the run's LoRA adapter put on
the same weights, as the job does), in one process on one loaded model:

* eval: ``medcot_ui.evaluate.generate.answer_batch``, exactly what ``jobs.evaluate`` calls per batch (the run's
  prompt format, left-padded batch, greedy ``generate``, cut at EOS, decode, split at ``</think>``, timing);
* plain: ``model.generate`` on the same prompts, the same batch, the same adapter state and the same greedy settings,
  tokens counted the same way (up to EOS).

Calls alternate (plain, eval, plain, eval, ...) after a warm-up of each; the median of ``--repeats`` is reported,
with the ratio eval / plain (goal: >= 0.9). Storing a batch's answers (one SQLite transaction) is not included.

    python bench/eval_throughput.py [OUT_DIR] [--work DIR] [--tokens 128] [--batches 1 8 32] [--repeats 2]
    python bench/eval_throughput.py OUT_DIR --tiny     # CPU check with the demo model (numbers mean nothing)

The GPU run uses the random-initialised 8B-shaped model of ``bench/make_random_8b.py`` (built into ``--work`` if
missing; MEDCOT_GPU_WORK is the default) with the rank-16 adapter of ``bench/compare_gpu.py``. Needs only torch,
transformers, peft, safetensors and this repository (no Gradio). Writes OUT_DIR/eval_throughput.json (OUT_DIR
defaults to $OUT: ``scripts/gpu-check.sh tests`` runs it with no arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


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


def questions(n: int) -> list[str]:
    from medcot_ui.hosting.settings import DEMO_DATA_FILE

    rows = [json.loads(line)["Question"] for line in DEMO_DATA_FILE.read_text(encoding="utf-8").splitlines()]
    return [rows[i % len(rows)] for i in range(n)]


def plain_generate(model: Any, tokenizer: Any, prompts: list[str], tokens: int) -> int:
    """Plain ``generate`` of one batch; returns the new tokens up to each row's EOS (as the job counts them)."""
    import torch

    from medcot_ui.evaluate.generate import encode, generate_kwargs

    enc = encode(tokenizer, prompts, next(model.parameters()).device)
    kwargs = generate_kwargs(model, tokenizer, tokens)
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs)
    stops = set(kwargs["eos_token_id"])
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    return sum(next((i for i, t in enumerate(row) if t in stops), len(row)) for row in new)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(loaded: Any, switch: Any, side: str, batch: int, tokens: int, repeats: int) -> dict[str, Any]:
    """Median tokens/s of the evaluation path and of plain generate for one side and batch size."""
    from medcot_ui.evaluate.generate import answer_batch
    from medcot_ui.training.prompts import PromptFormat

    fmt = PromptFormat()
    asked = questions(batch)
    prompts = [fmt.inference_prompt(q, loaded.tokenizer) for q in asked]
    switch.use(side)

    def run_eval(n: int = tokens) -> int:
        return sum(g.tokens for g in answer_batch(loaded.model, loaded.tokenizer, fmt, asked, n))

    def run_plain(n: int = tokens) -> int:
        return plain_generate(loaded.model, loaded.tokenizer, prompts, n)

    rates: dict[str, list[float]] = {"eval": [], "plain": []}
    # Warm-up at full length: a 16-token warm-up left the first timed plain call growing its cache and allocator
    # (14.9 vs 40.9 tokens/s on an H200, 2026-11-30), which skewed the median of two.
    for fn in (run_plain, run_eval):
        fn()
    for _ in range(repeats):
        for name, fn in (("plain", run_plain), ("eval", run_eval)):
            _sync()
            start = time.perf_counter()
            produced = fn()
            _sync()
            rates[name].append(produced / (time.perf_counter() - start))
    ev, plain = statistics.median(rates["eval"]), statistics.median(rates["plain"])
    return {"side": side, "batch": batch, "eval_tokens_per_s": round(ev, 1), "plain_tokens_per_s": round(plain, 1),
            "ratio": round(ev / plain, 3), "runs": {k: [round(v, 1) for v in vs] for k, vs in rates.items()}}


def run(model_dir: Path, adapter: Path, batches: list[int], tokens: int, repeats: int) -> list[dict[str, Any]]:
    from medcot_ui.compare.loading import load_model
    from medcot_ui.compare.row_lora import read_adapter
    from medcot_ui.evaluate.generate import SideSwitch

    loaded = load_model(str(model_dir), quantised=False)
    switch = SideSwitch(loaded.model, {"base": None, "tuned": read_adapter(adapter)}, rows=max(batches))
    rows = []
    for batch in batches:
        for side in ("base", "tuned"):
            row = measure(loaded, switch, side, batch, tokens, repeats)
            print(f"{side:<6} {batch:>5} {row['eval_tokens_per_s']:>12.1f} {row['plain_tokens_per_s']:>12.1f} "
                  f"{row['ratio']:>7.3f}", flush=True)
            rows.append({**row, "device": loaded.device})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path(os.environ.get("OUT", "/tmp/medcot-gpu-out")),
                        help="folder for eval_throughput.json (default: $OUT, as scripts/gpu-check.sh runs it)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("MEDCOT_GPU_WORK", "/tmp/medcot-gpu")))
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per answer")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the demo model on the CPU (checks the script only)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    if not args.tiny and not torch.cuda.is_available():
        parser.error("no CUDA GPU: run on a GPU machine, or pass --tiny to check the script on the CPU")
    model_dir, adapter = prepare(args.work, args.tiny)
    print(f"{'side':<6} {'batch':>5} {'eval tok/s':>12} {'plain tok/s':>12} {'ratio':>7}")
    rows = run(model_dir, adapter, args.batches, args.tokens, args.repeats)
    result = {"model": "demo (tiny, CPU)" if args.tiny else "random-init DeepSeek-R1-Distill-Llama-8B shape, bf16",
              "tokens": args.tokens, "repeats": args.repeats, "torch": torch.__version__, "rows": rows}
    path = args.out / "eval_throughput.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
