"""The batch generation engine: many prompts through one model, as fast as the GPU allows.

A static KV cache of N slots (``slot_model``) with a compiled decode step (CUDA graphs on a GPU) and continuous
refill: a slot whose answer reached EOS or its limit takes the next prompt at once, so one long answer never
holds a whole batch. Prompts are admitted longest first (the long ones start early instead of trailing at the
end). Base and tuned answers share batches: each slot's LoRA scale (``row_lora``) says which side it is.

Evaluate runs whole benchmarks on it; the interface (``Request`` in, ``Finished`` out, ``should_stop`` polled)
leaves room for another backend (a vLLM engine with the tuned side as a LoRA request) where one is installed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from medcot_ui.inference.row_lora import RowLoRA
from medcot_ui.inference.slot_model import SlotModel, cache_bytes_per_slot

log = logging.getLogger(__name__)

MAX_SLOTS = 256  # beyond this a decode step of an 8B is compute-bound: more slots add memory, not speed
CPU_SLOTS = 8
CHECK_EVERY = 8  # decode steps between looks at the host side (finished slots, refill, cancel)
PREFILL_ROWS = 16  # prompts prefilled in one forward (caps the activation memory of a refill)


@dataclass(frozen=True)
class Request:
    """One prompt to answer. ``key`` is the caller's handle; ``tuned`` puts the LoRA adapter on for it.
    ``forced_tokens`` (benchmarks): generate exactly that many tokens, EOS or not."""

    key: Any
    prompt_ids: list[int]
    tuned: bool
    max_new_tokens: int
    forced_tokens: int | None = None


@dataclass(frozen=True)
class Finished:
    request: Request
    tokens: list[int]  # generated, EOS excluded
    finish: str  # eos / length


@dataclass
class EngineStats:
    finished: int = 0
    tokens: int = 0
    steps: int = 0
    prefills: int = 0
    seconds: float = 0.0
    peak_busy_slots: int = 0
    times_refilled: int = 0  # slots that took a new prompt while others were mid-answer

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass
class _Slot:
    request: Request
    tokens: list[int] = field(default_factory=list)


def cache_length(longest_prompt: int, max_new_tokens: int) -> int:
    """Positions a slot needs for answers of ``max_new_tokens`` after prompts of up to ``longest_prompt``."""
    return longest_prompt + max_new_tokens + CHECK_EVERY


def choose_slots(model: Any, length: int, requests: int, memory_fraction: float = 0.75) -> int:
    """How many slots fit: on a GPU, from free memory (keeping the process under ``memory_fraction`` of the card
    and room for a step's activations); on the CPU a few. Never more than there are requests."""
    if not torch.cuda.is_available() or next(model.parameters()).device.type != "cuda":
        return max(1, min(CPU_SLOTS, requests))
    dtype = model.lm_head.weight.dtype
    per_slot = cache_bytes_per_slot(model.config, length, dtype)
    # A step's own memory: float logits a few times over and the prefill's activations.
    step_reserve = 4 * MAX_SLOTS * model.config.vocab_size * 4 + (2 << 30)
    free, total = torch.cuda.mem_get_info()
    budget = min(free, int(total * memory_fraction) - torch.cuda.memory_allocated()) - step_reserve
    return max(1, min(MAX_SLOTS, requests, budget // per_slot))


class BatchEngine:
    """Answers ``Request``s on one model with ``slots`` cache rows of ``length`` positions (prompt + answer).

    ``length`` also holds CHECK_EVERY spare positions (see ``_decode_steps``): use ``cache_length``.
    ``lora``: the tuned side's adapter injected with room for ``slots`` rows (None: every request is base).
    ``compiled``: capture the decode step as CUDA graphs (a GPU with 16/32-bit weights); eager otherwise.
    """

    def __init__(self, model: Any, eos: Iterable[int], slots: int, length: int, lora: RowLoRA | None = None,
                 compiled: bool = False, greedy: bool = True, temperature: float = 0.6, top_p: float = 0.95,
                 seed: int = 3407):
        if lora is not None and lora.rows < slots:
            raise ValueError(f"the adapter was injected for {lora.rows} rows, the engine has {slots} slots")
        self.slots_model = SlotModel(model, slots, length)
        self.eos = set(eos)
        self.lora, self.greedy, self.temperature, self.top_p = lora, greedy, temperature, top_p
        self.generator = torch.Generator(device=self.slots_model.device).manual_seed(seed)
        self.compiled = compiled
        self._step = (torch.compile(self._next_tokens, mode="reduce-overhead", fullgraph=False, dynamic=False)
                      if compiled else self._next_tokens)

    @property
    def slots(self) -> int:
        return self.slots_model.slots

    def _pick(self, logits: torch.Tensor) -> torch.Tensor:
        if self.greedy:
            return logits.argmax(-1)
        probs = torch.softmax(logits / self.temperature, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > self.top_p  # keep the smallest set reaching top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        picked = torch.multinomial(sorted_probs, 1, generator=self.generator)
        return order.gather(-1, picked).squeeze(-1)

    def _next_tokens(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        logits = self.slots_model.decode(tokens, positions)
        return logits.argmax(-1) if self.greedy else logits

    def _set_sides(self, tuned: list[bool]) -> None:
        if self.lora is not None:
            self.lora.set_rows(tuned)
        elif any(tuned):
            raise ValueError("a tuned request, but the engine has no adapter")

    def run(self, requests: Iterable[Request], on_finished: Callable[[list[Finished]], None],
            should_stop: Callable[[], bool] = lambda: False) -> EngineStats:
        """Answer every request (longest prompt first), handing each group of finished answers to
        ``on_finished`` as they end; stops early (answers in flight are dropped) once ``should_stop`` is True."""
        limit = self.slots_model.length - CHECK_EVERY
        todo = deque(sorted(requests, key=lambda r: -len(r.prompt_ids)))
        for request in todo:
            if len(request.prompt_ids) + request.max_new_tokens > limit:
                raise ValueError(f"a prompt of {len(request.prompt_ids)} tokens + {request.max_new_tokens} new "
                                 f"tokens does not fit the engine's {limit} positions")
        device = self.slots_model.device
        busy: dict[int, _Slot] = {}
        tokens = torch.zeros(self.slots, dtype=torch.long, device=device)
        positions = torch.zeros(self.slots, dtype=torch.long, device=device)
        stats, start = EngineStats(), time.perf_counter()
        with torch.inference_mode():
            while (todo or busy) and not should_stop():
                free = [i for i in range(self.slots) if i not in busy]
                # Refill once a few slots are free (each prefill is one more forward), or when all are.
                if todo and free and (len(free) >= max(1, self.slots // 16) or not busy):
                    stats.times_refilled += len(free) if busy else 0
                    self._admit(todo, free, busy, tokens, positions, stats)
                stats.peak_busy_slots = max(stats.peak_busy_slots, len(busy))
                done = self._decode_steps(busy, tokens, positions, stats)
                if done:
                    stats.finished += len(done)
                    on_finished(done)
        stats.seconds = time.perf_counter() - start
        return stats

    def _admit(self, todo: deque, free: list[int], busy: dict[int, _Slot], tokens: torch.Tensor,
               positions: torch.Tensor, stats: EngineStats) -> None:
        """Prefill the next prompts into ``free`` slots, in groups of similar length, and record first tokens."""
        device = self.slots_model.device
        while free and todo:
            group = [todo.popleft() for _ in range(min(PREFILL_ROWS, len(free), len(todo)))]
            slots, free = free[: len(group)], free[len(group):]
            width = max(len(r.prompt_ids) for r in group)
            ids = torch.zeros(len(group), width, dtype=torch.long)
            for row, request in enumerate(group):
                ids[row, : len(request.prompt_ids)] = torch.tensor(request.prompt_ids)
            lengths = torch.tensor([len(r.prompt_ids) for r in group], device=device)
            where = torch.tensor(slots, device=device)
            self._set_sides([r.tuned for r in group])  # rows 0..k of the prefill batch
            logits = self.slots_model.prefill(ids.to(device), lengths, where)
            first = self._pick(logits)
            tokens[where], positions[where] = first, lengths
            for slot, request in zip(slots, group):
                busy[slot] = _Slot(request)
            stats.prefills += 1
            self._record(busy, slots, [[token] for token in first.tolist()])
        self._set_sides([busy[i].request.tuned if i in busy else False for i in range(self.slots)])

    def _decode_steps(self, busy: dict[int, _Slot], tokens: torch.Tensor, positions: torch.Tensor,
                      stats: EngineStats) -> list[Finished]:
        """Up to CHECK_EVERY decode steps, then the answers that ended (their slots freed)."""
        done = self._collect(busy, stats)
        if not busy:
            return done
        # A slot that ends within these steps runs on to the last of them (its extra tokens are dropped): one host
        # sync per CHECK_EVERY steps instead of one per step. The cache has CHECK_EVERY spare positions for it.
        idle = [i for i in range(self.slots) if i not in busy]
        if idle:
            positions[idle] = 0
        history = []
        for _ in range(CHECK_EVERY):
            if self.compiled:
                torch.compiler.cudagraph_mark_step_begin()
            out = self._step(tokens, positions)
            picked = out if self.greedy else self._pick(out)
            tokens.copy_(picked)
            positions.add_(1)
            history.append(picked.clone())
        stats.steps += len(history)
        generated = torch.stack(history, 1).tolist()  # one host sync per CHECK_EVERY steps
        self._record(busy, list(busy), [generated[slot] for slot in busy])
        return done + self._collect(busy, stats)

    def _record(self, busy: dict[int, _Slot], slots: list[int], new: list[list[int]]) -> None:
        """Append each slot's new tokens, up to its EOS or its limit (tokens past either are discarded)."""
        for slot, produced in zip(slots, new):
            state = busy[slot]
            for token in produced:
                if self._ended(state) is not None:
                    break
                state.tokens.append(token)

    def _ended(self, state: _Slot) -> str | None:
        request = state.request
        if request.forced_tokens is None and state.tokens and state.tokens[-1] in self.eos:
            return "eos"
        if len(state.tokens) >= (request.forced_tokens or request.max_new_tokens):
            return "length"
        return None

    def _collect(self, busy: dict[int, _Slot], stats: EngineStats) -> list[Finished]:
        done = []
        for slot in list(busy):
            reason = self._ended(busy[slot])
            if reason is not None:
                state = busy.pop(slot)
                kept = state.tokens[:-1] if reason == "eos" else state.tokens
                done.append(Finished(state.request, kept, reason))
                stats.tokens += len(kept)
        return done
