"""Batched answers for an evaluation: one ``generate`` per batch and side, with the run's prompt format.

Both sides use one copy of the base weights: the base side runs with the LoRA adapter switched off
(``disable_adapter``), a tuned side with its run's adapter active. No database and no Gradio here, so the GPU
bench times exactly what the evaluation job runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from medcot_ui.training.prompts import THINK_OPEN, Completion, PromptFormat, split_completion


@dataclass(frozen=True)
class Generated:
    text: str
    completion: Completion
    tokens: int  # generated tokens, EOS excluded
    finish: str  # eos / length
    seconds: float  # this answer's share of the batch's time


@contextmanager
def adapter_active(model: Any, adapter: str | None) -> Iterator[None]:
    """Generate with ``adapter`` (a loaded PEFT adapter's name), or with every adapter off when None."""
    if adapter is None:
        context = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
        with context:
            yield
        return
    model.set_adapter(adapter)
    yield


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured] if configured is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def encode(tokenizer: Any, prompts: list[str], device: Any) -> dict[str, Any]:
    """Left-padded ids of a batch of prompts (decoder-only models continue from the right edge)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


def generate_kwargs(model: Any, tokenizer: Any, max_new_tokens: int, greedy: bool = True,
                    temperature: float = 0.6, top_p: float = 0.95) -> dict[str, Any]:
    sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_p": top_p}
    # A greedy run would warn about the model's own sampling defaults; set them aside explicitly.
    if greedy:
        sampling.update(temperature=None, top_p=None, top_k=None)
    return dict(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos_ids(model, tokenizer), use_cache=True, **sampling)


def answer_batch(model: Any, tokenizer: Any, fmt: PromptFormat, questions: list[str], max_new_tokens: int,
                 adapter: str | None = None, greedy: bool = True, temperature: float = 0.6,
                 seed: int = 3407) -> list[Generated]:
    """Generate one answer per question in one batched call and split each into reasoning and answer."""
    import torch

    prompts = [fmt.inference_prompt(q, tokenizer) for q in questions]
    opened = [p.rstrip().endswith(THINK_OPEN) for p in prompts]
    device = next(model.parameters()).device
    enc = encode(tokenizer, prompts, device)
    kwargs = generate_kwargs(model, tokenizer, max_new_tokens, greedy, temperature)
    start = time.perf_counter()
    with adapter_active(model, adapter), torch.inference_mode():
        if not greedy:
            torch.manual_seed(seed)
        out = model.generate(**enc, **kwargs)
    seconds = (time.perf_counter() - start) / len(questions)
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    stops = set(kwargs["eos_token_id"])
    results = []
    for ids, think_open in zip(new, opened):
        end = next((i for i, t in enumerate(ids) if t in stops), None)
        kept = ids if end is None else ids[:end]
        text = tokenizer.decode(kept, skip_special_tokens=True)
        results.append(Generated(text, split_completion(text, think_open), len(kept),
                                 "length" if end is None else "eos", seconds))
    return results
