"""Which option a model chose, read from the text after ``</think>``; never guessed.

Accepted, in this order: a stated answer ("the answer is C", "Answer: (C)"), a bare letter ("C", "C.", "(C)"),
or exactly one option's text. Anything else (no closed reasoning, no letter, several options named) is unparsed.
"""

from __future__ import annotations

import re

from medcot_ui.training.prompts import Completion

# Letters are capitals: "the answer is a viral infection" names no option.
_STATED = re.compile(r"(?i:\banswer\s*(?:is|would be)?\s*:?\s*(?:option\s*)?)\(?\*{0,2}([A-Z])\b")
_BARE = re.compile(r"^\s*(?i:option\s*)?\(?\*{0,2}([A-Z])\*{0,2}\)?\s*(?:[.:)\-]|$)")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().strip(".").lower()


def parse_choice(answer: str, options: dict[str, str]) -> str | None:
    """The option letter ``answer`` names, or None when it names none (or more than one)."""
    letters = {letter.upper() for letter in options}
    for pattern in (_STATED, _BARE):
        found = {m.group(1) for m in pattern.finditer(answer) if m.group(1) in letters}
        if len(found) == 1:
            return found.pop()
    text = _norm(answer)
    if not text:
        return None
    named = [letter for letter, option in options.items() if _norm(option) and _norm(option) in text]
    return named[0].upper() if len(named) == 1 else None


def choice_of(completion: Completion, options: dict[str, str]) -> str | None:
    """The chosen letter of a split completion: only a closed reasoning block is followed by an answer."""
    if completion.state == "unclosed":
        return None
    return parse_choice(completion.answer, options)
