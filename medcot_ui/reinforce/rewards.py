"""The rewards a GRPO run trains on, each a plain function of one completion (tested directly, weighted by the
run's ``grpo`` settings): the extracted answer letter is the key; the completion has the recipe's shape (one
closed ``<think>`` block, then an answer naming one letter); an optional penalty on length.

The letter is read by the same rule Evaluate scores with (``evaluate.choices``): what GRPO rewards is what the
accuracy view counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medcot_ui.evaluate.choices import choice_of
from medcot_ui.training.prompts import THINK_CLOSE, THINK_OPEN, split_completion


def correctness(completion: str, options: dict[str, str], key: str, opened: bool = True) -> float:
    """1.0 when the letter read from the answer is the key, else 0.0 (no letter: 0.0). ``opened``: the prompt
    ended with ``<think>``, so only text after ``</think>`` is an answer."""
    return float(choice_of(split_completion(completion, opened), options) == key)


def format_score(completion: str, options: dict[str, str], opened: bool = True) -> float:
    """1.0 for exactly one ``</think>`` (and no second ``<think>``) followed by an answer naming one letter; for a
    prompt that opened no ``<think>``, an answer naming one letter."""
    if opened and (completion.count(THINK_CLOSE) != 1 or THINK_OPEN in completion.split(THINK_CLOSE, 1)[1]):
        return 0.0
    return float(choice_of(split_completion(completion, opened), options) is not None)


def _opened(prompt: str) -> bool:
    return prompt.rstrip().endswith(THINK_OPEN)


def length_penalty(completion_tokens: int, max_tokens: int) -> float:
    """Minus the share of the completion budget used: 0 for an empty completion, -1 for one cut at the limit."""
    return -min(1.0, completion_tokens / max_tokens) if max_tokens else 0.0


@dataclass
class RewardLog:
    """The latest batch's completions and rewards, for the run's log (a sample per logging step)."""

    rows: list[tuple[str, float]]

    def sample(self, count: int = 2, width: int = 160) -> list[str]:
        return [f"reward {reward:+.2f}: {text[:width]!r}" for text, reward in self.rows[:count]]


def reward_functions(weights: dict[str, float], max_tokens: int, log: RewardLog
                     ) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """TRL reward functions (``completions`` plus the dataset's ``options`` (JSON) / ``key`` columns) and weights,
    for the rewards whose weight is not 0. Function names become the metric names (``rewards/<name>/mean``)."""

    def right_answer(prompts: list[str], completions: list[str], options: list[str], key: list[str],
                     **_: Any) -> list[float]:
        scores = [correctness(c, json.loads(o), k, _opened(p))
                  for p, c, o, k in zip(prompts, completions, options, key)]
        log.rows = list(zip(completions, scores))
        return scores

    def answer_format(prompts: list[str], completions: list[str], options: list[str], **_: Any) -> list[float]:
        return [format_score(c, json.loads(o), _opened(p)) for p, c, o in zip(prompts, completions, options)]

    def length(completions: list[str], completion_ids: list[list[int]], **_: Any) -> list[float]:
        return [length_penalty(len(ids), max_tokens) for ids in completion_ids]

    chosen = [(fn, weights[name]) for name, fn in (("correctness", right_answer), ("format", answer_format),
                                                    ("length", length)) if weights[name]]
    if not chosen:
        raise ValueError("grpo: every reward weight is 0, so nothing would be learned")
    return [fn for fn, _ in chosen], [w for _, w in chosen]
