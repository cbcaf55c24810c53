"""An evaluation's answers through the batch engine: every pending question, both sides, in shared batches.

Against the base model one pass answers both sides (each slot's LoRA scale says which side it is), or, with
``merge`` (16-bit weights), two passes: the base side on the plain model, then the tuned side after the adapter is
added into the weights in place (no LoRA work per step; the compiled decode step is reused). Against another run
two passes, one per run's adapter (copied in place when the shapes match, so the compiled decode step is reused). Each group of finished answers goes to the caller with its share of the wall time, which
makes the stored seconds add up to the time taken (the progress ETA and tokens/s read them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medcot_ui.evaluate.choice_data import question_with_options
from medcot_ui.evaluate.generate import Generated, decode_answer
from medcot_ui.evaluate.tables import SIDES, EvalItem
from medcot_ui.inference.batch_engine import BatchEngine, EngineStats, Finished, Request, cache_length, choose_slots
from medcot_ui.inference.eos import eos_ids
from medcot_ui.inference.row_lora import AdapterWeights, RowLoRA, merge_into
from medcot_ui.training.prompts import THINK_OPEN, PromptFormat

Answer = tuple[EvalItem, str, Generated]  # the question, the side, its answer
# Base vs a run on 16-bit weights: merge the adapter for the tuned side (two passes) rather than apply it per row
# (one shared pass). Measured on an H100 (bench/eval_throughput.py, docs/BENCHMARKS.md): merged was 1.12x faster,
# but bf16 rounding of W + BA moved the tuned answers beyond the per-row adapter's noise: so per row.
MERGE_TUNED = False


@dataclass(frozen=True)
class Pass:
    """One run of the engine: the adapter injected for it and, per side answered, whether that side uses it;
    ``merged``: the adapter is added into the weights before the pass instead (every request then runs plain)."""

    adapter: AdapterWeights | None
    sides: dict[str, bool]
    merged: bool = False


def passes(sides: dict[str, AdapterWeights | None], merge: bool = False) -> list[Pass]:
    """Base vs a run: one pass, the run's adapter on in the tuned slots, or (``merge``) the base side plain and
    then the tuned side merged. Run vs run: one pass per adapter."""
    if sides["base"] is None and merge and sides["tuned"] is not None:
        return [Pass(None, {"base": False}), Pass(sides["tuned"], {"tuned": False}, merged=True)]
    if sides["base"] is None:
        return [Pass(sides["tuned"], {"base": False, "tuned": sides["tuned"] is not None})]
    return [Pass(sides[side], {side: True}) for side in SIDES]


def prompt_question(item: EvalItem) -> str:
    return question_with_options(item.question, item.options) if item.options else item.question


class EngineAnswers:
    """The pending answers of one evaluation on one loaded model (``slots``: 0 = from free GPU memory)."""

    def __init__(self, model: Any, tokenizer: Any, fmt: PromptFormat, max_new_tokens: int, compiled: bool,
                 greedy: bool = True, temperature: float = 0.6, slots: int = 0, merge: bool = False):
        self.model, self.tokenizer, self.fmt = model, tokenizer, fmt
        self.max_new_tokens, self.compiled, self.slots, self.merge = max_new_tokens, compiled, slots, merge
        self.greedy, self.temperature = greedy, temperature
        self.engine: BatchEngine | None = None
        self.lora: RowLoRA | None = None

    def _prompts(self, items: list[EvalItem]) -> dict[int, tuple[list[int], bool]]:
        prompts = {}
        for item in items:
            text = self.fmt.inference_prompt(prompt_question(item), self.tokenizer)
            prompts[item.id] = (self.tokenizer(text)["input_ids"], text.rstrip().endswith(THINK_OPEN))
        return prompts

    def _engine_for(self, step: Pass, longest: int, requests: int) -> BatchEngine:
        """The engine with ``step``'s adapter on it; built once, the adapter copied in place where it fits."""
        if step.merged:
            merge_into(self.model, step.adapter)  # in place: an engine built for the plain model reads it
            step = Pass(None, step.sides)
        if self.engine is not None and (step.adapter is None) == (self.lora is None) and (
                self.lora is None or self.lora.fits(step.adapter)):
            if self.lora is not None:
                self.lora.load(step.adapter)
            return self.engine
        if self.lora is not None:
            self.lora.detach()
        length = cache_length(longest, self.max_new_tokens)
        slots = self.slots or choose_slots(self.model, length, requests)
        self.lora = RowLoRA(self.model, step.adapter, slots) if step.adapter is not None else None
        self.engine = BatchEngine(self.model, eos_ids(self.model, self.tokenizer), slots, length, self.lora,
                                  compiled=self.compiled, greedy=self.greedy, temperature=self.temperature)
        return self.engine

    def run(self, items: list[EvalItem], sides: dict[str, AdapterWeights | None],
            on_answers: Callable[[list[Answer]], None], should_stop: Callable[[], bool]) -> list[EngineStats]:
        """Answer every side ``items`` still lack; ``on_answers`` gets each group as it finishes."""
        prompts = self._prompts(items)
        longest = max((len(ids) for ids, _ in prompts.values()), default=1)
        by_id = {item.id: item for item in items}
        stats = []
        for step in passes(sides, self.merge):
            requests = [Request((item.id, side), prompts[item.id][0], tuned, self.max_new_tokens)
                        for item in items for side, tuned in step.sides.items() if not item.generated(side)]
            if not requests:
                continue
            engine = self._engine_for(step, longest, len(requests))
            since = [time.perf_counter()]

            def finished(done: list[Finished]) -> None:
                now = time.perf_counter()
                share, since[0] = (now - since[0]) / len(done), now
                on_answers([(by_id[d.request.key[0]], d.request.key[1],
                             decode_answer(self.tokenizer, d.tokens, d.finish, share, prompts[d.request.key[0]][1]))
                            for d in done])

            stats.append(engine.run(requests, finished, should_stop))
            if should_stop():
                break
        return stats
