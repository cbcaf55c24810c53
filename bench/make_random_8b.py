"""Build a random-initialised model of DeepSeek-R1-Distill-Llama-8B's exact shape, plus synthetic training rows.

The GPU machine has no network, so no real weights: throughput, memory and latency do not depend on the
weight values, so this measures what users get (loss values mean nothing). The tokenizer is the demo
tokenizer (trained on our demo data) so token ids stay below its size; the embedding and LM head keep the
real 128,256-row vocabulary, so the logits cost what they really cost.

    python bench/make_random_8b.py OUT_DIR [--rows 500]   # writes OUT_DIR/model and OUT_DIR/rows.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

R1_DISTILL_LLAMA_8B = dict(  # recipe.md: Llama-3.1-8B shape
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
    rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    tie_word_embeddings=False)


def build_model(out: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from medcot_ui.training.models import build_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists():
        return out
    tokenizer = build_tokenizer()
    config = LlamaConfig(**R1_DISTILL_LLAMA_8B, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         torch_dtype="bfloat16")
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # never materialise 32 GB of fp32 weights
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def synthetic_rows(tokenizer_dir: Path, path: Path, rows: int, seed: int = 0) -> Path:
    """Rows of 300-1400 tokens in the real schema (reasoning ~70 %, answer ~15 %), like medical-o1."""
    from transformers import AutoTokenizer

    from medcot_ui.settings import DEMO_DATA_FILE

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    words = " ".join(json.loads(line)["Complex_CoT"] for line in DEMO_DATA_FILE.read_text().splitlines()).split()
    per_word = len(tok(" ".join(words[:2000]))["input_ids"]) / 2000
    rng = random.Random(seed)

    def text(tokens: int) -> str:
        start = rng.randrange(0, len(words) - 1)
        n = max(5, int(tokens / per_word))
        return " ".join(words[(start + i) % len(words)] for i in range(n))

    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(rows):
            total = rng.randint(300, 1400) - 130  # minus the recipe's instruction header
            fh.write(json.dumps({"Question": text(total * 0.15), "Complex_CoT": text(total * 0.7),
                                 "Response": text(total * 0.15)}) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=500)
    args = parser.parse_args()
    t0 = time.time()
    model_dir = build_model(args.out / "model")
    rows = synthetic_rows(model_dir, args.out / "rows.jsonl", args.rows)
    print(f"model in {model_dir}, {args.rows} rows in {rows} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
