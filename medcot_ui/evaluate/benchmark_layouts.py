"""The standard medical benchmarks in the layouts the Hub publishes them in, recognised by their columns so a user
needs no mapping step: each is rewritten into the generic multiple-choice rows (question, options as a letter
mapping, answer letter) that ``choice_data.choice_items`` validates.

- MedQA-USMLE (``GBaker/MedQA-USMLE-4-options`` and ``-hf``): ``question``, ``options`` as a mapping A-D (A-E in the
  5-option release), ``answer_idx`` letter; the generic path reads it as it is.
- MedMCQA (``openlifescienceai/medmcqa``): ``question``, ``opa``..``opd``, ``cop`` a 0-based index, ``choice_type``;
  multi-answer rows are skipped and counted (one letter cannot score them).
- PubMedQA (``pubmed_qa``, labeled): ``context`` (its ``contexts`` passages), ``question``, ``final_decision``
  yes/no/maybe, asked as options A yes, B no, C maybe after the abstract's passages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

@dataclass(frozen=True)
class Benchmark:
    """A standard benchmark by name: where the Hub keeps it, and the split that serves as its test set."""

    title: str
    dataset_id: str
    config: str
    split: str


BENCHMARKS = {
    "medqa": Benchmark("MedQA-USMLE, 4 options", "GBaker/MedQA-USMLE-4-options", "", "test"),
    "medmcqa": Benchmark("MedMCQA", "openlifescienceai/medmcqa", "", "validation"),  # its test split has no key
    "pubmedqa": Benchmark("PubMedQA, labeled", "pubmed_qa", "pqa_labeled", "train"),  # its one split: 1,000 rows
}
MEDMCQA_OPTIONS = ("opa", "opb", "opc", "opd")
PUBMEDQA_ANSWERS = {"yes": "A", "no": "B", "maybe": "C"}


@dataclass(frozen=True)
class Converted:
    records: list[dict[str, Any]]  # generic rows: question, options {letter: text}, answer letter
    row_numbers: list[int]  # each row's 1-based number in the file (skipped rows leave gaps), for error messages
    layout: str  # the benchmark's name, as the source line shows it
    note: str  # what was skipped, "" when nothing


def detect_layout(columns: list[str]) -> str | None:
    """'medmcqa', 'pubmedqa' or None (the generic path, MedQA's layout included)."""
    present = set(columns)
    if {"question", "cop", *MEDMCQA_OPTIONS} <= present:
        return "medmcqa"
    if {"question", "context", "final_decision"} <= present:
        return "pubmedqa"
    return None


def convert(records: list[dict[str, Any]], layout: str) -> Converted:
    """Rewrite ``records`` of ``layout`` into generic rows; a row that cannot be read keeps its row number in the
    error ``choice_items`` raises (its cells are passed on as they are, so the message names them)."""
    if layout == "medmcqa":
        return _medmcqa(records)
    if layout == "pubmedqa":
        return _pubmedqa(records)
    raise ValueError(f"unknown benchmark layout {layout!r}")


def _medmcqa(records: list[dict[str, Any]]) -> Converted:
    rows, numbers, multi = [], [], 0
    for number, rec in enumerate(records, start=1):
        if str(rec.get("choice_type") or "single").strip().lower() == "multi":
            multi += 1
            continue
        numbers.append(number)
        options = {letter: rec.get(column) for letter, column in zip("ABCD", MEDMCQA_OPTIONS)}
        cop = rec.get("cop")
        # cop is 0-based (0 = opa): an index outside 0-3 is passed on as it is and refused with its row number
        answer = "ABCD"[cop] if isinstance(cop, int) and 0 <= cop < 4 else cop
        rows.append({"question": rec.get("question"), "options": options, "answer": answer})
    note = f"{multi} multi-answer rows skipped" if multi else ""
    return Converted(rows, numbers, "MedMCQA layout", note)


def _pubmedqa(records: list[dict[str, Any]]) -> Converted:
    rows = []
    for rec in records:
        context = rec.get("context")
        passages = context.get("contexts") if isinstance(context, dict) else context
        text = "\n".join(passages) if isinstance(passages, list) else str(passages or "")
        decision = str(rec.get("final_decision") or "").strip().lower()
        question = rec.get("question")
        rows.append({"question": f"{text}\n\nQuestion: {question}".strip() if question else question,
                     "options": {"A": "yes", "B": "no", "C": "maybe"},
                     "answer": PUBMEDQA_ANSWERS.get(decision, rec.get("final_decision"))})
    return Converted(rows, list(range(1, len(rows) + 1)), "PubMedQA layout", "")
