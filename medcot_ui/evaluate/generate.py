"""Answers in fixed batches: one ``generate`` per batch and side, with the run's prompt format.

The evaluation job's path for models the batch engine (``inference/batch_engine``) does not run, and the
"before" of its benchmark. Both sides use one copy of the base weights: the base side runs on the plain base, a
tuned side with its run's adapter injected (:class:`SideSwitch`). No database and no Gradio here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from medcot_ui.inference.eos import eos_ids
from medcot_ui.training.prompts import THINK_OPEN, Completion, PromptFormat, split_completion


@dataclass(frozen=True)
class Generated:
    text: str
    completion: Completion
    tokens: int  # generated tokens, EOS excluded
    finish: str  # eos / length
    seconds: float  # this answer's share of the batch's time


class SideSwitch:
    """Puts each side's LoRA adapter on the one base model (Compare's row-scaled injection), or takes it off.

    A side whose adapter is None runs on the plain base (the layers are put back, so it pays no LoRA work).
    Switching between two adapters of one shape copies the weights in place.
    """

    def __init__(self, model: Any, sides: dict[str, Any], rows: int):
        self.model, self.sides, self.rows = model, sides, rows
        self.lora: Any = None
        self.active: Any = None

    def use(self, side: str) -> None:
        from medcot_ui.inference.row_lora import RowLoRA

        weights = self.sides[side]
        if weights is None:
            if self.lora is not None:
                self.lora.detach()
                self.lora, self.active = None, None
            return
        if self.lora is not None and self.active is weights:
            return
        if self.lora is not None and self.lora.fits(weights):
            self.lora.load(weights)
        else:
            if self.lora is not None:
                self.lora.detach()
            self.lora = RowLoRA(self.model, weights, self.rows)
        self.lora.set_rows([True] * self.rows)
        self.active = weights


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
                 greedy: bool = True, temperature: float = 0.6, seed: int = 3407) -> list[Generated]:
    """Generate one answer per question in one batched call (with whichever adapter is on) and split each into
    reasoning and answer."""
    import torch

    prompts = [fmt.inference_prompt(q, tokenizer) for q in questions]
    opened = [p.rstrip().endswith(THINK_OPEN) for p in prompts]
    device = next(model.parameters()).device
    enc = encode(tokenizer, prompts, device)
    kwargs = generate_kwargs(model, tokenizer, max_new_tokens, greedy, temperature)
    start = time.perf_counter()
    with torch.inference_mode():
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
        results.append(decode_answer(tokenizer, kept, "length" if end is None else "eos", seconds, think_open))
    return results


def decode_answer(tokenizer: Any, ids: list[int], finish: str, seconds: float, think_open: bool) -> Generated:
    """An answer's text from its generated ids (EOS excluded), split into reasoning and answer."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return Generated(text, split_completion(text, think_open), len(ids), finish, seconds)
