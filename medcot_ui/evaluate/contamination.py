"""Contamination check: which evaluation questions also sit in the rows a run trained on.

The default training data (medical-o1-reasoning-SFT) was built from the MedQA and MedMCQA training sets, so a gain
on a test split means little if its questions were trained on. A question is flagged when, after lower-casing and
collapsing whitespace, it shares with a training row
- any 64 consecutive characters (the Med-PaLM 2 rule HuatuoGPT-o1 used), or
- any 13 consecutive words (lm-evaluation-harness's 13-gram decontamination; words are runs of letters and digits).

Both rules find every shared run by looking up fixed blocks: each question's blocks at every position go in an index,
and each training row is read only at block-aligned positions. A shared run of 64 characters always contains an
aligned block of 32 (64 >= 2 x 32 - 1), and one of 13 words an aligned block of 7, so nothing is missed; a hit is then
extended both ways and kept when the shared run is long enough.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

CHARS, CHAR_BLOCK = 64, 32
WORDS, WORD_BLOCK = 13, 7
CHAR_RULE, WORD_RULE = "64 characters", "13 words"
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


@dataclass(frozen=True)
class Overlap:
    item: int  # position of the question in the evaluation
    training_row: int  # position of the row among the training texts
    rule: str  # CHAR_RULE or WORD_RULE: the first rule that matched (characters are checked first)
    shared: str  # the longest shared run found, normalised


@dataclass
class ContaminationReport:
    questions: int
    training_rows: int
    overlaps: list[Overlap] = field(default_factory=list)  # at most one per question: its longest shared run
    seconds: float = 0.0

    @property
    def flagged(self) -> list[int]:
        return sorted(o.item for o in self.overlaps)

    def summary(self) -> str:
        return (f"{len(self.overlaps)} of {self.questions} questions share text with the {self.training_rows} "
                f"training rows ({CHAR_RULE} or {WORDS} consecutive words in common)")


def check_contamination(questions: Sequence[str], training_texts: Sequence[str]) -> ContaminationReport:
    """Flag each question that shares 64 characters or 13 words with any training text (see the module doc)."""
    start = time.perf_counter()
    found: dict[int, Overlap] = {}
    for item, row, shared in _shared_chars([normalise(q) for q in questions], [normalise(t) for t in training_texts]):
        _keep(found, Overlap(item, row, CHAR_RULE, shared))
    question_words = [_WORD.findall(normalise(q)) for q in questions]
    training_words = [_WORD.findall(normalise(t)) for t in training_texts]
    for item, row, shared in _shared_words(question_words, training_words):
        if item not in found:  # the character rule already flagged it
            _keep(found, Overlap(item, row, WORD_RULE, shared))
    return ContaminationReport(len(questions), len(training_texts), [found[i] for i in sorted(found)],
                               time.perf_counter() - start)


def _keep(found: dict[int, Overlap], overlap: Overlap) -> None:
    old = found.get(overlap.item)
    if old is None or (old.rule == overlap.rule and len(overlap.shared) > len(old.shared)):
        found[overlap.item] = overlap


def _shared_chars(questions: list[str], texts: list[str]) -> list[tuple[int, int, str]]:
    index: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for q, text in enumerate(questions):
        for pos in range(len(text) - CHAR_BLOCK + 1):
            index[text[pos:pos + CHAR_BLOCK]].append((q, pos))
    hits = []
    for row, text in enumerate(texts):
        for start in range(0, len(text) - CHAR_BLOCK + 1, CHAR_BLOCK):
            for q, pos in index.get(text[start:start + CHAR_BLOCK], ()):
                lo, hi = _extend(questions[q], pos, text, start, CHAR_BLOCK)
                if hi - lo >= CHARS:
                    hits.append((q, row, questions[q][lo:hi]))
    return hits


def _shared_words(questions: list[list[str]], texts: list[list[str]]) -> list[tuple[int, int, str]]:
    index: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for q, words in enumerate(questions):
        for pos in range(len(words) - WORD_BLOCK + 1):
            index[tuple(words[pos:pos + WORD_BLOCK])].append((q, pos))
    hits = []
    for row, words in enumerate(texts):
        for start in range(0, len(words) - WORD_BLOCK + 1, WORD_BLOCK):
            for q, pos in index.get(tuple(words[start:start + WORD_BLOCK]), ()):
                lo, hi = _extend(questions[q], pos, words, start, WORD_BLOCK)
                if hi - lo >= WORDS:
                    hits.append((q, row, " ".join(questions[q][lo:hi])))
    return hits


def _extend(a: Sequence[object], pos: int, b: Sequence[object], start: int, block: int) -> tuple[int, int]:
    """The span of ``a`` around the block at ``pos`` that equals ``b`` around the block at ``start``."""
    back = 0
    while pos - back > 0 and start - back > 0 and a[pos - back - 1] == b[start - back - 1]:
        back += 1
    ahead = 0
    while pos + block + ahead < len(a) and start + block + ahead < len(b) and \
            a[pos + block + ahead] == b[start + block + ahead]:
        ahead += 1
    return pos - back, pos + block + ahead
