"""How long publishing's local steps take on this machine: merge, GGUF conversion, quantisation, the card.

Two models, both built here (no download): the demo model (trained with the Quick demo preset, then exported
through the app's own ``export_local``) and a random-init Llama of a chosen size with a LoRA adapter on every
linear layer (its hidden size is a multiple of 256, so llama.cpp uses real K-quant blocks, as for the 8B).

    python bench/publish_export.py                              # demo + a 0.16 B Llama (CPU)
    python bench/publish_export.py --shape r1-8b --no-demo      # the recipe's 8B shape (GPU machine)

Prints one table: model, step, seconds, output size. Upload time is not measured (no Hub from this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return f"{total / 2**20:.1f} MiB"


def demo_rows(home: Path) -> list[tuple[str, str, float, str]]:
    from jobs.train import train_direct
    from medcot_ui.publish import export as publish
    from medcot_ui.training.presets import quick_demo

    run_id, status = train_direct(quick_demo())
    assert status == "succeeded", status
    rows = []
    for kind in ("adapter", "merged", "gguf"):
        if kind == "gguf" and not publish.gguf.availability().ok:
            rows.append(("demo", "export gguf", float("nan"), publish.gguf.availability().reason[:40]))
            continue
        started = time.perf_counter()
        outcome = publish.export_local(run_id, kind)
        rows.append(("demo", f"export {kind}" + (" (merged reused)" if kind == "gguf" else ""),
                     time.perf_counter() - started, _size(outcome.folder)))
    started = time.perf_counter()
    publish.model_card.write_card(publish.model_card.gather(run_id, "adapter"), home / "card-only")
    rows.append(("demo", "model card + loss curve", time.perf_counter() - started, _size(home / "card-only")))
    return rows


def sized_rows(work: Path, shape: dict, report) -> None:
    """Build a random-init model of ``shape`` (bf16) with a rank-16 LoRA adapter, then time each export step."""
    import subprocess

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from medcot_ui.publish import gguf
    from medcot_ui.training.models import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # never materialise fp32 weights of a large model
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        base = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    label = f"{sum(p.numel() for p in base.parameters()) / 1e9:.2f} B Llama"
    base_dir, adapter_dir = work / "base", work / "adapter"
    started = time.perf_counter()
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    report(label, "write random base (bf16 safetensors)", time.perf_counter() - started, _size(base_dir))
    lora = get_peft_model(base, LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                 "o_proj", "gate_proj", "up_proj",
                                                                                 "down_proj"]))
    lora.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base_dir)
    (adapter_dir / "adapter_config.json").write_text(json.dumps(cfg))
    del base, lora
    torch.cuda.empty_cache() if torch.cuda.is_available() else None

    started = time.perf_counter()  # what the Publish tab runs: the merge child process, load to save
    dtype = subprocess.run([sys.executable, "-m", "medcot_ui.publish.merge", str(adapter_dir), str(work / "merged")],
                           check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()[-1]
    report(label, f"merge (child process, PEFT, {dtype})", time.perf_counter() - started, _size(work / "merged"))
    shutil.rmtree(base_dir)  # keep the disk for the GGUF files
    if not gguf.availability().ok:
        report(label, "gguf", float("nan"), "llama.cpp tools not installed")
        return
    started = time.perf_counter()
    full = gguf.convert(work / "merged", work / "full.gguf")
    report(label, "convert to GGUF (llama.cpp)", time.perf_counter() - started, _size(full))
    shutil.rmtree(work / "merged")
    for quant in gguf.QUANTS:
        started = time.perf_counter()
        out = gguf.quantize(full, work / f"m-{quant}.gguf", quant)
        report(label, f"quantize {quant} (llama.cpp)", time.perf_counter() - started, _size(out))


SHAPES = {
    "small": dict(vocab_size=2050, hidden_size=1024, intermediate_size=3584, num_hidden_layers=12,
                  num_attention_heads=16, num_key_value_heads=4),
    # DeepSeek-R1-Distill-Llama-8B's shape (recipe.md), as in bench/make_random_8b.py.
    "r1-8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                  rope_theta=500000.0, rms_norm_eps=1e-5,
                  rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small", help="the random-init model's shape")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo run (needs the full app install)")
    parser.add_argument("--work", type=Path, help="where to write the models (default: a temp folder)")
    args = parser.parse_args()
    from medcot_ui.training.models import device_description

    print(f"publish export steps on {device_description()}", flush=True)
    print(f"| {'model':<16} | {'step':<38} | {'seconds':>8} | {'output':>14} |")
    print(f"|{'-' * 18}|{'-' * 40}|{'-' * 10}|{'-' * 16}|", flush=True)

    def report(model: str, step: str, seconds: float, size: str) -> None:  # printed as it goes: long steps
        print(f"| {model:<16} | {step:<38} | {seconds:>8.1f} | {size:>14} |", flush=True)

    with tempfile.TemporaryDirectory(prefix="medcot-bench-publish-", dir=args.work) as tmp:
        home = Path(tmp) / "home"
        os.environ.update(MEDCOT_HOME=str(home), HF_HUB_OFFLINE="1")
        if not args.no_demo:
            for row in demo_rows(home):
                report(*row)
        sized_rows(Path(tmp) / "sized", SHAPES[args.shape], report)
    print(f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
