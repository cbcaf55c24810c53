"""Multiple-choice datasets: read (Hub / file / the bundled demo), map question, options and answer, validate.

Options come as a list (["...", "..."] -> A, B, ...), a letter-keyed mapping ({"A": "..."}, the MedQA 4-option
layout on the Hub) or lettered columns (A, B, C, D). The answer key is a letter, or the text of one option.
Every problem names its row (1-based) and column, and all of them are reported at once.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcot_ui.data.columns import columns_of
from medcot_ui.evaluate.benchmark_layouts import convert, detect_layout
from medcot_ui.data.load import load
from medcot_ui.errors import DataError
from medcot_ui.settings import PROJECT_DIR
from medcot_ui.training.config import DataSettings

DEFAULT_HUB_DATASET = "GBaker/MedQA-USMLE-4-options"
DEFAULT_HUB_SPLIT = "test"
DEMO_CHOICE_FILE = PROJECT_DIR / "data" / "demo" / "medical_choice_demo.jsonl"
_LETTER_MARK = re.compile(r"(?:^|(?<=\s))\(?([A-J])[.):]\s+")  # "A. ", "(B) ", "C: " at a word start
LETTERED = ""  # the options mapping that means "one column per letter"
LETTERS = string.ascii_uppercase[:10]
MAX_LISTED = 8


class ChoiceDataError(DataError):
    """A multiple-choice dataset that cannot be scored; the message names the row and column."""


@dataclass(frozen=True)
class ChoiceItem:
    question: str
    options: dict[str, str]  # letter -> option text, in letter order
    answer: str  # the correct letter


@dataclass(frozen=True)
class ChoiceMapping:
    question: str = "question"
    options: str = "options"  # LETTERED: columns A, B, C, ...
    answer: str = "answer"


def detect_mapping(columns: list[str]) -> ChoiceMapping:
    """Guess the mapping from column names (MedQA's answer_idx letter is preferred over its answer text)."""
    lower = {c.lower(): c for c in columns}
    question = next((lower[n] for n in ("question", "prompt", "stem") if n in lower), "question")
    options = next((lower[n] for n in ("options", "choices") if n in lower), None)
    if options is None and {"A", "B"} <= set(columns):
        options = LETTERED
    answer = next((lower[n] for n in ("answer_idx", "answer", "label", "correct") if n in lower), "answer")
    return ChoiceMapping(question, options if options is not None else "options", answer)


def read_records(source: str, path: str = "", dataset_id: str = DEFAULT_HUB_DATASET, config: str = "",
                 split: str = DEFAULT_HUB_SPLIT) -> tuple[list[dict[str, Any]], str]:
    """Read a multiple-choice source ('demo', 'file' or 'hub') through the same loader as training data."""
    label = f"the demo questions ({DEMO_CHOICE_FILE.name})" if source == "demo" else Path(path).name
    if source == "demo":
        source, path = "file", str(DEMO_CHOICE_FILE)
    if source == "file" and not Path(path).exists():
        raise ChoiceDataError(f"file: '{path}' does not exist")
    settings = DataSettings(source=source, file_path=path, dataset_id=dataset_id, dataset_config=config,
                            split=split if source == "hub" else "train")
    loaded = load(settings)
    # A local file is read whole: the loader's "(train)" split label would name a split it does not have.
    return loaded.records, loaded.source if source == "hub" else label


def _options(rec: dict[str, Any], mapping: ChoiceMapping, columns: list[str]) -> dict[str, str] | str:
    """The row's options, or a sentence saying what is wrong with them."""
    if mapping.options == LETTERED:
        return {c: str(rec[c]).strip() for c in LETTERS if c in columns and rec.get(c) not in (None, "")}
    cell = rec.get(mapping.options)
    if isinstance(cell, str):
        try:
            cell = json.loads(cell)  # a CSV cell holding a JSON list or mapping
        except ValueError:
            return _split_lettered(cell)
    if isinstance(cell, (list, tuple)):
        if len(cell) > len(LETTERS):
            return f"{len(cell)} options; at most {len(LETTERS)} are supported"
        return {LETTERS[i]: _text(v) for i, v in enumerate(cell)}
    if isinstance(cell, dict):
        keys = [str(k).strip().upper() for k in cell]
        if not all(k in LETTERS for k in keys):
            return f"the option keys must be letters A to {LETTERS[-1]}, got {', '.join(map(str, cell))}"
        return {str(k).strip().upper(): _text(v) for k, v in sorted(cell.items(), key=lambda kv: str(kv[0]))}
    return "missing" if cell is None else f"expected a list of options, got {type(cell).__name__}"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _split_lettered(text: str) -> dict[str, str] | str:
    """Options written as one text, "A. x B. y C. z", split at the letters A, B, C... in order; anything else is
    refused (a guess could score every answer against the wrong options)."""
    marks = list(_LETTER_MARK.finditer(text))
    letters = [m.group(1) for m in marks]
    if len(marks) < 2 or letters != list(LETTERS[:len(marks)]) or text[:marks[0].start()].strip():
        return ("expected a list of options (or a mapping from letters to options), got text that is not "
                "'A. ... B. ...' with the letters in order")
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return {m.group(1): text[m.end():end].strip() for m, end in zip(marks, ends)}


def _option_problem(options: dict[str, str]) -> str | None:
    """Why these options cannot be scored: an empty one, or two the same (either could be 'right')."""
    empty = [letter for letter, text in options.items() if not text]
    if empty:
        return f"option {', '.join(empty)} is empty"
    seen: dict[str, str] = {}
    for letter, text in options.items():
        if text.lower() in seen:
            return f"options {seen[text.lower()]} and {letter} are the same ({text!r})"
        seen[text.lower()] = letter
    return None


def _answer_letter(value: Any, options: dict[str, str]) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if text.upper() in options and len(text) == 1:
        return text.upper()
    matches = [k for k, v in options.items() if v.lower() == text.lower()]
    return matches[0] if len(matches) == 1 else None


def _check_columns(records: list[dict[str, Any]], mapping: ChoiceMapping) -> list[str]:
    present = columns_of(records)
    wanted = {"question": mapping.question, "answer": mapping.answer}
    if mapping.options != LETTERED:
        wanted["options"] = mapping.options
    missing = [f"no {role} column '{column}'" for role, column in wanted.items() if column not in present]
    if mapping.options == LETTERED and not {"A", "B"} <= set(present):
        missing.append("options as lettered columns need at least columns A and B")
    if missing:
        raise ChoiceDataError(f"{'; '.join(missing)} (columns: {', '.join(present) or 'none'}); map the columns "
                              "that hold the question, the options and the answer key", missing)
    return present


def choice_items(records: list[dict[str, Any]], mapping: ChoiceMapping,
                 row_numbers: list[int] | None = None) -> list[ChoiceItem]:
    """Map and validate every row; raises ChoiceDataError listing each bad row (by ``row_numbers``, the rows'
    numbers in the file, when some were skipped before)."""
    if not records:
        raise ChoiceDataError("the dataset is empty: no questions to score")
    present = _check_columns(records, mapping)
    items, problems = [], []
    for i, rec in zip(row_numbers or range(1, len(records) + 1), records):
        question = rec.get(mapping.question)
        if not isinstance(question, str) or not question.strip():
            problems.append(f"row {i}, column '{mapping.question}': the question is missing or empty")
            continue
        options = _options(rec, mapping, present)
        where = "columns A, B, ..." if mapping.options == LETTERED else f"column '{mapping.options}'"
        if isinstance(options, str):
            problems.append(f"row {i}, {where}: {options}")
            continue
        if len(options) < 2:
            problems.append(f"row {i}, {where}: fewer than two options")
            continue
        if problem := _option_problem(options):
            problems.append(f"row {i}, {where}: {problem}")
            continue
        letter = _answer_letter(rec.get(mapping.answer), options)
        if letter is None:
            problems.append(f"row {i}, column '{mapping.answer}': the answer key {rec.get(mapping.answer)!r} is "
                            f"not one of the options ({', '.join(options)}, by letter or by text)")
            continue
        items.append(ChoiceItem(question.strip(), options, letter))
    if problems:
        listed = "; ".join(problems[:MAX_LISTED]) + (f"; and {len(problems) - MAX_LISTED} more"
                                                       if len(problems) > MAX_LISTED else "")
        raise ChoiceDataError(f"{len(problems)} problem{'s' * (len(problems) > 1)} in the multiple-choice data: "
                              f"{listed}", problems)
    return items


def question_with_options(question: str, options: dict[str, str]) -> str:
    """What the model is asked: the question, the lettered options, and how to state the answer."""
    lines = [question, ""] + [f"{letter}. {text}" for letter, text in options.items()]
    return "\n".join(lines + ["", "Answer with the letter of the correct option."])


def benchmark_items(records: list[dict[str, Any]], mapping: ChoiceMapping | None = None) -> tuple[list[ChoiceItem], str]:
    """Validated items of ``records`` and what was recognised ("MedMCQA layout; 2 multi-answer rows skipped", or
    ""): a benchmark's own layout is read without a mapping; ``mapping`` (the user's) overrides the detection."""
    if mapping is None and records and (layout := detect_layout(columns_of(records))):
        converted = convert(records, layout)
        items = choice_items(converted.records, ChoiceMapping(), converted.row_numbers)
        return items, "; ".join(filter(None, [converted.layout, converted.note]))
    return choice_items(records, mapping or detect_mapping(columns_of(records))), ""
