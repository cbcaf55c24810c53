"""Log-likelihood scoring of multiple-choice questions, as lm-evaluation-harness scores ``medqa_4options``: no
generation, so a whole benchmark scores in seconds to minutes.

The context is "Question: ...\\nA. ...\\nB. ...\\nAnswer:" and each option's continuation is " A", " B", ...;
its score is the summed log-probability of the continuation's tokens given the context (the context and the
continuation are tokenised together and split where the context ends, as the harness does). ``acc`` picks the
highest score, ``acc_norm`` the highest score per byte of continuation (the same pick for one-letter
continuations; kept because the harness reports both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

METHOD = "loglik"


def context_of(question: str, options: dict[str, str]) -> str:
    lines = [f"Question: {question}"] + [f"{letter}. {text}" for letter, text in options.items()]
    return "\n".join(lines) + "\nAnswer:"


@dataclass(frozen=True)
class OptionScores:
    logprob: dict[str, float]  # letter -> summed log-probability of its continuation
    length: dict[str, int]  # letter -> bytes of its continuation

    @property
    def acc_choice(self) -> str:
        return max(self.logprob, key=self.logprob.__getitem__)

    @property
    def norm_choice(self) -> str:
        return max(self.logprob, key=lambda k: self.logprob[k] / self.length[k])

    def to_json(self) -> str:
        return json.dumps({"method": METHOD, "logprob": self.logprob, "bytes": self.length})

    @classmethod
    def from_json(cls, text: str | None) -> "OptionScores | None":
        """The scores stored as an answer's text; None for a generated answer."""
        try:
            data = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("method") != METHOD:
            return None
        return cls({k: float(v) for k, v in data["logprob"].items()}, {k: int(v) for k, v in data["bytes"].items()})


def continuation_ids(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids): the two tokenised together, split at the end of the context's own ids."""
    whole = tokenizer(context + continuation)["input_ids"]
    head = tokenizer(context)["input_ids"]
    return whole[:len(head)], whole[len(head):]


def score_options(model: Any, tokenizer: Any, question: str, options: dict[str, str], rows: int = 0
                  ) -> OptionScores:
    """Each option's summed continuation log-probability, in one forward pass over all options. ``rows`` pads
    the batch to that many rows (a row-scaled LoRA holds a fixed row count)."""
    import torch

    context = context_of(question, options)
    pairs = {letter: continuation_ids(tokenizer, context, f" {letter}") for letter in options}
    sequences = [head + tail for head, tail in pairs.values()]
    width = max(map(len, sequences))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = sequences + [sequences[-1]] * max(0, rows - len(sequences))
    device = next(model.parameters()).device
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in batch], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=device)
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
    scores: dict[str, float] = {}
    for row, (letter, (head, tail)) in enumerate(pairs.items()):
        positions = range(len(head) - 1, len(head) + len(tail) - 1)  # the logits that predict each tail token
        scores[letter] = float(sum(logprobs[row, p, t] for p, t in zip(positions, tail)))
    return OptionScores(scores, {letter: len(f" {letter}".encode()) for letter in options})


def scored_answer(scores: OptionScores, seconds: float) -> Any:
    """The scores as a stored answer: the text holds them, the answer is the acc pick (no reasoning, no tokens)."""
    from medcot_ui.evaluate.generate import Generated
    from medcot_ui.training.prompts import Completion

    return Generated(scores.to_json(), Completion("", scores.acc_choice, "none"), 0, METHOD, seconds)
