"""What a comparison streams: a pane per answer (tokens, text, timings) and the updates that carry both panes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from medcot_ui.compare.generation import GenerationSettings
from medcot_ui.training.prompts import THINK_CLOSE, Completion, split_completion


@dataclass
class Pane:
    """One pane's stream: token ids so far, the decoded text, and its timings (seconds from the start)."""

    label: str
    prompt_opened_think: bool = True
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    first_token_s: float | None = None
    think_tokens: int | None = None  # tokens up to and including </think>
    think_seconds: float | None = None  # seconds until </think>
    seconds: float | None = None  # when this pane's last token arrived
    finish_reason: Literal["eos", "length", "stopped"] | None = None
    token_times: list[float] = field(default_factory=list, repr=False)

    tokens: int = 0  # generated tokens, EOS excluded (kept as a count so a stored comparison can be shown)

    def add(self, token: int, seconds: float) -> None:
        self.token_ids.append(token)
        self.tokens += 1
        self.token_times.append(seconds)
        self.seconds = seconds
        if self.first_token_s is None:
            self.first_token_s = seconds

    def snapshot(self) -> "Pane":
        """A copy that later tokens do not change (each update the engine yields holds its own)."""
        return replace(self, token_ids=list(self.token_ids), token_times=list(self.token_times))

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def completion(self) -> Completion:
        return split_completion(self.text, self.prompt_opened_think)

    @property
    def tokens_per_s(self) -> float | None:
        """Decoding rate after the first token (the prefill is time to first token)."""
        if self.first_token_s is None or self.seconds is None or self.tokens < 2:
            return None
        span = self.seconds - self.first_token_s
        return (self.tokens - 1) / span if span > 0 else None


@dataclass
class CompareUpdate:
    """One snapshot of a comparison; the last one of a stream has ``phase == "done"``."""

    phase: Literal["waiting", "loading", "generating", "done"]
    message: str
    run_id: int
    question: str
    settings: GenerationSettings
    base: Pane | None = None
    tuned: Pane | None = None
    prompt: str = ""
    base_model: str = ""
    device: str = ""
    stopped: bool = False
    created_at: float = field(default_factory=time.time)


def refresh_text(tokenizer: Any, panes: tuple[Pane, ...]) -> None:
    """Decode each pane's tokens into its text, and note where its reasoning closed."""
    for pane in panes:
        pane.text = tokenizer.decode(pane.token_ids, skip_special_tokens=True)
        if pane.think_tokens is None and THINK_CLOSE in pane.text:
            # Seen at this refresh; find the exact token so the count does not depend on refresh timing.
            pane.think_tokens = _tokens_until(tokenizer, pane.token_ids, THINK_CLOSE)
            pane.think_seconds = pane.token_times[pane.think_tokens - 1]


def _tokens_until(tokenizer: Any, ids: list[int], marker: str) -> int:
    lo, hi = 1, len(ids)
    while lo < hi:  # the shortest prefix whose text holds the marker
        mid = (lo + hi) // 2
        if marker in tokenizer.decode(ids[:mid], skip_special_tokens=True):
            hi = mid
        else:
            lo = mid + 1
    return lo
