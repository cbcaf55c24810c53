"""Token statistics of the training texts: per-row counts (question / reasoning / answer / total), the
histogram, how many rows the max sequence length truncates, and tokens per epoch.

The total of a row is the length of exactly what the trainer tokenises (``tokenizer(text)``, special tokens
included). Texts are tokenised in batches (one fast-tokenizer call per chunk) and each part's count is read off
the same encoding through its character offsets, so every row is tokenised once.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcot_ui.data.load import Prepared
from medcot_ui.training.prompts import PromptFormat
from medcot_ui.settings import DEMO_MODEL_ID

Progress = Callable[[float, str], None]
PARTS = ("question", "reasoning", "answer", "total")


# ---- which tokenizer ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenizerChoice:
    tokenizer: Any
    used: str  # the model whose tokenizer counts the tokens
    note: str  # why it is not the requested model's own ('' when it is)


_tokenizers: dict[str, TokenizerChoice] = {}
_lock = threading.RLock()  # re-entered when falling back to the demo tokenizer


def tokenizer_for(model_id: str) -> TokenizerChoice:
    """The model's own tokenizer when it is on this machine (or the Hub is reachable), else the demo model's."""
    model_id = (model_id or DEMO_MODEL_ID).strip()
    with _lock:
        if model_id not in _tokenizers:
            choice = _find_tokenizer(model_id)
            if not choice.note:  # a fallback is not remembered: the model may become available later
                _tokenizers[model_id] = choice
            return choice
        return _tokenizers[model_id]


def _find_tokenizer(model_id: str) -> TokenizerChoice:
    from transformers import AutoTokenizer

    from medcot_ui.data.hub import hub_reachable
    from medcot_ui.training.models import resolve_model

    try:
        local = resolve_model(model_id)  # the demo model's folder (built on first use), or the id as given
        if Path(local).is_dir():
            return TokenizerChoice(AutoTokenizer.from_pretrained(local), model_id, "")
        try:
            return TokenizerChoice(AutoTokenizer.from_pretrained(model_id, local_files_only=True), model_id, "")
        except OSError:
            if not hub_reachable():
                raise
            return TokenizerChoice(AutoTokenizer.from_pretrained(model_id), model_id, "")
    except (OSError, ValueError):
        demo = tokenizer_for(DEMO_MODEL_ID)
        return TokenizerChoice(demo.tokenizer, DEMO_MODEL_ID, (
            f"The tokenizer of '{model_id}' could not be loaded (it is not on this machine and the Hub is "
            f"unreachable or does not have it), so tokens were counted with the demo model's tokenizer "
            f"({DEMO_MODEL_ID}). Its small vocabulary splits text into "
            "more tokens than real models do: treat the counts as an upper estimate."))


# ---- counting -------------------------------------------------------------------------------------------

@dataclass
class TokenStats:
    counts: dict[str, list[int]]  # part -> tokens per row, in dataset order
    max_seq_length: int
    truncated: list[int]  # 0-based rows longer than max_seq_length
    train_rows: int
    tokens_per_epoch: int  # training rows' tokens after truncation: what one pass over the data feeds the model
    tokenizer: str
    note: str = ""
    bins: list["Bin"] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """min / median / mean / 95th percentile / max per part."""
        table = []
        for part in PARTS:
            values = sorted(self.counts[part])
            if not values:
                continue
            table.append({"part": part, "min": values[0], "median": int(statistics.median(values)),
                          "mean": round(statistics.fmean(values), 1),
                          "p95": values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)],
                          "max": values[-1]})
        return table


@dataclass(frozen=True)
class Bin:
    start: float  # rows with start < tokens <= end
    end: float
    rows: int
    truncated: bool  # the bin lies beyond max_seq_length

    @property
    def label(self) -> str:
        return f"{math.floor(self.start) + 1}-{math.floor(self.end)}"


def histogram(totals: list[int], max_seq_length: int, target_bins: int = 24) -> list[Bin]:
    """Bins of total tokens per row; max_seq_length is always a bin edge, so no bin mixes kept and cut rows."""
    if not totals:
        return []
    top = max(totals)
    per_bin = max(1, round(max_seq_length / max(top / target_bins, 1)))
    width = max_seq_length / per_bin
    counts = [0] * math.ceil(top / width)
    for t in totals:
        counts[max(0, math.ceil(t / width) - 1)] += 1
    first = next(i for i, n in enumerate(counts) if n)  # no run of empty bars before the shortest row
    return [Bin(i * width, (i + 1) * width, counts[i], i >= per_bin) for i in range(first, len(counts))]


_MARKS = ("\ue000", "\ue001", "\ue002")  # private-use characters: never in real text


def _skeleton(fmt: PromptFormat, tokenizer: Any) -> tuple[str, ...] | None:
    """The format's fixed text around question, reasoning and answer, or None when it is not a plain splice."""
    text = fmt.training_text(*_MARKS, tokenizer)
    pieces = []
    for mark in _MARKS:
        if text.count(mark) != 1:
            return None
        head, text = text.split(mark)
        pieces.append(head)
    return (*pieces, text)


def _spans(text: str, parts: tuple[str, str, str], skeleton: tuple[str, ...] | None) -> list[tuple[int, int]] | None:
    """Character spans of question, reasoning and answer inside the training text (verified), or None."""
    if skeleton is None:
        return None
    spans, pos = [], 0
    for lead, part in zip(skeleton, parts):
        pos += len(lead)
        if text[pos: pos + len(part)] != part:
            return None
        spans.append((pos, pos + len(part)))
        pos += len(part)
    return spans if pos + len(skeleton[3]) == len(text) else None


def _token_at(encoding: Any, pos: int, step: int, stop: int) -> int | None:
    for p in range(pos, stop, step):  # a character no token covers (stripped whitespace): look at the next one
        token = encoding.char_to_token(p)
        if token is not None:
            return token
    return None


def _span_tokens(encoding: Any, start: int, end: int) -> int:
    first = _token_at(encoding, start, 1, end)
    last = _token_at(encoding, end - 1, -1, start - 1)
    return last - first + 1 if first is not None and last is not None and last >= first else 0


def count_tokens(prepared: Prepared, fmt: PromptFormat, choice: TokenizerChoice, max_seq_length: int,
                 progress: Progress | None = None, chunk: int = 256) -> TokenStats:
    """Token counts for every row of ``prepared`` (its texts are what the trainer tokenises).

    ``chunk`` rows are tokenised per call: enough for the fast tokenizer to use every core, few enough that the
    chunk's encodings (ids, offsets, token strings) stay around 100 MB for rows of a few thousand tokens.
    """
    tokenizer = choice.tokenizer
    skeleton = _skeleton(fmt, tokenizer)
    counts: dict[str, list[int]] = {part: [] for part in PARTS}
    rows, texts = prepared.rows, prepared.texts
    for lo in range(0, len(texts), chunk):
        batch_texts = texts[lo: lo + chunk]
        batch = tokenizer(batch_texts, add_special_tokens=True, verbose=False)
        counts["total"] += [len(ids) for ids in batch["input_ids"]]
        encodings = getattr(batch, "encodings", None)  # None for a slow (Python) tokenizer
        slow: list[int] = []
        for j, text in enumerate(batch_texts):
            row = rows[lo + j]
            spans = _spans(text, (row.question, row.reasoning, row.answer), skeleton) if encodings else None
            if spans is None:
                slow.append(j)
                for part in PARTS[:3]:
                    counts[part].append(0)
                continue
            for part, (start, end) in zip(PARTS, spans):
                counts[part].append(_span_tokens(encodings[j], start, end))
        if slow:  # parts tokenised on their own (approximate at the edges, as the offsets are)
            for part in PARTS[:3]:
                parts = [getattr(rows[lo + j], part) for j in slow]
                lengths = [len(ids) for ids in tokenizer(parts, add_special_tokens=False, verbose=False)["input_ids"]]
                for j, n in zip(slow, lengths):
                    counts[part][lo + j] = n
        if progress is not None:
            done = min(lo + chunk, len(texts))
            progress(done / len(texts), f"Counting tokens: {done:,} of {len(texts):,} rows")
    totals = counts["total"]
    held = set(prepared.eval_indices)
    train = [i for i in range(len(totals)) if i not in held]
    return TokenStats(
        counts=counts, max_seq_length=max_seq_length,
        truncated=[i for i, t in enumerate(totals) if t > max_seq_length], train_rows=len(train),
        tokens_per_epoch=sum(min(totals[i], max_seq_length) for i in train),
        tokenizer=choice.used, note=choice.note, bins=histogram(totals, max_seq_length))


def truncation_warning(stats: TokenStats) -> str | None:
    cut = stats.truncated
    if not cut:
        return None
    rows = ", ".join(str(i + 1) for i in cut[:8]) + (f" and {len(cut) - 8} more" if len(cut) > 8 else "")
    return (f"{len(cut)} of {len(stats.counts['total'])} rows are longer than the max sequence length "
            f"({stats.max_seq_length} tokens) and will be truncated, losing the end of the answer and the EOS "
            f"token (rows {rows}); raise the max sequence length or shorten those rows")
