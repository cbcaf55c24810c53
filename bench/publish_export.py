"""How long publishing's local steps take on this machine: merge, GGUF conversion, quantisation, the card.

Two models, both built here (no download): the demo model (trained with the Quick demo preset, then exported
through the app's own ``export_local``) and a random-init Llama of a chosen size with a LoRA adapter on every
linear layer (its hidden size is a multiple of 256, so llama.cpp uses real K-quant blocks, as for the 8B).

    python bench/publish_export.py                 # demo + a ~0.2 B Llama
    python bench/publish_export.py --hidden 2048 --layers 16   # larger

Prints one table: model, step, seconds, output size. Upload time is not measured (no Hub from this machine).
"""

from __future__ import annotations

import argparse
import json
import os
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
    from medcot_ui import publish
    from medcot_ui.presets import quick_demo

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


def sized_rows(work: Path, hidden: int, layers: int) -> list[tuple[str, str, float, str]]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from medcot_ui import gguf, publish
    from medcot_ui.models import ensure_demo_model

    tokenizer = AutoTokenizer.from_pretrained(ensure_demo_model())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden,
                         intermediate_size=int(hidden * 3.5) // 256 * 256,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    base = LlamaForCausalLM(config).to(torch.bfloat16)
    params = sum(p.numel() for p in base.parameters())
    label = f"{params / 1e9:.2f} B Llama"
    base_dir, adapter_dir = work / "base", work / "adapter"
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    lora = get_peft_model(base, LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                 "o_proj", "gate_proj", "up_proj",
                                                                                 "down_proj"]))
    lora.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base_dir)
    (adapter_dir / "adapter_config.json").write_text(json.dumps(cfg))
    del base, lora

    rows = []
    started = time.perf_counter()
    dtype = publish.merge_adapter(adapter_dir, work / "merged")
    rows.append((label, f"merge (PEFT, {dtype})", time.perf_counter() - started, _size(work / "merged")))
    if not gguf.availability().ok:
        return rows + [(label, "gguf", float("nan"), "llama.cpp tools not installed")]
    started = time.perf_counter()
    full = gguf.convert(work / "merged", work / "full.gguf")
    rows.append((label, "convert to GGUF (llama.cpp)", time.perf_counter() - started, _size(full)))
    for quant in gguf.QUANTS:
        started = time.perf_counter()
        out = gguf.quantize(full, work / f"m-{quant}.gguf", quant)
        rows.append((label, f"quantize {quant} (llama.cpp)", time.perf_counter() - started, _size(out)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024, help="hidden size of the sized model (multiple of 256)")
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medcot-bench-publish-") as tmp:
        home = Path(tmp) / "home"
        os.environ.update(MEDCOT_HOME=str(home), HF_HUB_OFFLINE="1")
        from medcot_ui.models import device_description

        rows = demo_rows(home) + sized_rows(Path(tmp) / "sized", args.hidden, args.layers)
    print(f"\npublish export steps on {device_description()} (load average {os.getloadavg()[0]:.1f})\n")
    print(f"| {'model':<16} | {'step':<34} | {'seconds':>8} | {'output':>14} |")
    print(f"|{'-' * 18}|{'-' * 36}|{'-' * 10}|{'-' * 16}|")
    for model, step, seconds, size in rows:
        print(f"| {model:<16} | {step:<34} | {seconds:>8.1f} | {size:>14} |")


if __name__ == "__main__":
    main()
