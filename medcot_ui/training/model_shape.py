"""A model's shape (layers, widths, vocabulary) and its parameter counts, read from its own ``config.json`` when it
is on this machine (the demo model, a local folder, or the Hugging Face cache), else from a table of known shapes
(the recipe's 8 B model). The Train estimate, the Compare memory budget and the merge's RAM check all count a
model this way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcot_ui.settings import DEMO_MODEL_ID, get_settings
from medcot_ui.training.config import RECIPE_MODEL


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


def is_on_this_machine(model_id: str) -> bool:
    """Whether the model's files are here (its config.json as a stand-in): a first run need not download it."""
    return _local_config_json(model_id) is not None
