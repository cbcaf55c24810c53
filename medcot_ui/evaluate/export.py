"""Export an evaluation: every question with its reference, both answers, the parsed choices and the ratings,
as CSV (for spreadsheets) and JSONL."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from medcot_ui.compare.stored import escape_cell
from medcot_ui.evaluate.records import get_evaluation, items_of, ratings_of
from medcot_ui.evaluate.tables import EvalItem
from medcot_ui.hosting.settings import get_settings

ITEM_FIELDS = ("position", "question", "options_json", "correct", "reference_reasoning", "reference_answer",
               "a_side") + tuple(f"{side}_{name}" for side in ("base", "tuned")
                                 for name in ("reasoning", "answer", "state", "tokens", "finish", "choice"))
FIELDS = ("evaluation_id", "kind", "run_id", "base_run_id") + ITEM_FIELDS + ("ratings",)


def records(evaluation_id: int) -> list[dict[str, Any]]:
    """One dict per question (ratings as a list of {rater, verdict, preferred, note})."""
    evaluation = get_evaluation(evaluation_id)
    if evaluation is None:
        raise ValueError(f"evaluation {evaluation_id} does not exist")
    by_item: dict[int, list[dict[str, Any]]] = {}
    for r in ratings_of(evaluation_id):
        by_item.setdefault(r.item_id, []).append(
            {"rater": r.rater, "verdict": r.verdict, "preferred": r.preferred, "note": r.note})
    head = {"evaluation_id": evaluation.id, "kind": evaluation.kind, "run_id": evaluation.run_id,
            "base_run_id": evaluation.base_run_id}
    return [{**head, **_item_fields(item), "ratings": by_item.get(item.id, [])} for item in items_of(evaluation_id)]


def _item_fields(item: EvalItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in ITEM_FIELDS}


def _path(evaluation_id: int, suffix: str) -> Path:
    evaluation = get_evaluation(evaluation_id)
    folder = get_settings().run_exports_dir(evaluation.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"evaluation-{evaluation_id}.{suffix}"


def export_jsonl(evaluation_id: int, path: Path | None = None) -> Path:
    rows = records(evaluation_id)
    path = path or _path(evaluation_id, "jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def export_csv(evaluation_id: int, path: Path | None = None) -> Path:
    """UTF-8 with BOM so spreadsheets read accents; formula-like cells escaped; ratings as JSON in one cell."""
    rows = records(evaluation_id)
    path = path or _path(evaluation_id, "csv")
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        for row in rows:
            row["ratings"] = json.dumps(row["ratings"], ensure_ascii=False)
            writer.writerow([escape_cell(row[name]) for name in FIELDS])
    return path
