"""Merge a run's LoRA adapter into its base model and save a standalone 16-bit model.

``python -m medcot_ui.publish.merge ADAPTER_DIR OUT_DIR [--dtype auto|float16|bfloat16|float32] [--base MODEL]`` is what
the Publish tab runs in a child process (only paths and the model id on its command line; it prints the dtype it
saved). This module imports neither the store nor Gradio, so the child starts quickly and needs only torch,
transformers and PEFT.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medcot_ui.errors import MedcotError


def merged_dtype_name(base_path: str, requested: str = "auto") -> str:
    """float16 / bfloat16 as requested; 'auto' keeps a 16-bit base's own dtype, else float16."""
    if requested != "auto":
        return requested
    try:
        cfg = json.loads((Path(base_path) / "config.json").read_text(encoding="utf-8"))
        dtype = cfg.get("dtype") or cfg.get("torch_dtype")
    except (OSError, ValueError):
        dtype = None  # a Hub id: read the config through transformers instead
        try:
            from transformers import AutoConfig

            dtype = str(getattr(AutoConfig.from_pretrained(base_path), "dtype", "") or "").replace("torch.", "")
        except Exception:  # noqa: BLE001 - unknown: the safe 16-bit default
            dtype = None
    return dtype if dtype in {"float16", "bfloat16"} else "float16"


class MergeRefused(MedcotError, ValueError):
    """The merge cannot give a faithful 16-bit model from this base; the message says why and what to do."""


def merge_adapter(adapter: Path, out_dir: Path, dtype: str = "auto", base: str | None = None) -> str:
    """Merge the LoRA adapter into its base model and save it (safetensors + tokenizer); returns the dtype.

    Always on the CPU, with PEFT's ``merge_and_unload`` on the 16-bit base: the GPU belongs to training and the
    Compare tab (a 16-bit 8B would take 16 GB of it while a run trains), and merging into the 16-bit weights is
    exact, whereas merging into a 4-bit base would round the adapter away. ``base`` is the run's base model: with
    4-bit loading, Unsloth records its pre-quantized copy in the adapter's config, which cannot be merged into.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from medcot_ui.training.models import resolve_model

    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    base_id = base or config["base_model_name_or_path"]
    base_path = resolve_model(base_id)
    if getattr(AutoConfig.from_pretrained(base_path), "quantization_config", None):
        raise MergeRefused(f"The base model `{base_id}` is a quantized checkpoint: merging needs its 16-bit "
                           "weights. Train from the 16-bit model (Unsloth quantizes it to 4-bit when it loads), or "
                           "export the adapter instead.")
    name = merged_dtype_name(base_path, dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_model = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, name), device_map="cpu")
    merged = PeftModel.from_pretrained(base_model, str(adapter)).merge_and_unload()
    merged.save_pretrained(out_dir, max_shard_size="5GB")
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(out_dir)
    return name


def memory_needed(base_model: str, dtype: str = "float16") -> int | None:
    """Bytes of RAM a merge needs: the base model's weights in ``dtype`` plus a quarter for loading and saving
    (shards are written one at a time). None when the model's shape is not known on this machine."""
    from medcot_ui.training.model_shape import model_shape

    shape, _ = model_shape(base_model)
    if shape is None:
        return None
    return int(shape.params * (4 if dtype == "float32" else 2) * 1.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medcot_ui.publish.merge", description=__doc__.splitlines()[0])
    parser.add_argument("adapter_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    parser.add_argument("--base", help="the run's base model (default: the one the adapter's config names)")
    args = parser.parse_args(argv)
    try:
        print(merge_adapter(Path(args.adapter_dir), Path(args.out_dir), args.dtype, args.base))
    except MergeRefused as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
