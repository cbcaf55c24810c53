"""Which token ids end an answer (shared by Compare, the batch engine and the evaluation job)."""

from __future__ import annotations

from typing import Any


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token id that ends an answer: the model's generation config's and the tokenizer's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured] if configured is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
