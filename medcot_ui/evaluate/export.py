"""Export an evaluation: every question with its reference, both answers, the parsed choices and the ratings,
as CSV (for spreadsheets) and JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcot_ui.evaluate.blinding import require_unblinded
from medcot_ui.evaluate.create import EvaluationError
from medcot_ui.evaluate.records import get_evaluation, items_of, ratings_of
from medcot_ui.evaluate.tables import EvalItem
from medcot_ui.hosting.bucket_files import keep_quietly
from medcot_ui.record_files import write_csv, write_jsonl
from medcot_ui.settings import get_settings

ITEM_FIELDS = ("position", "question", "options_json", "correct", "reference_reasoning", "reference_answer",
               "a_side") + tuple(f"{side}_{name}" for side in ("base", "tuned")
                                 for name in ("reasoning", "answer", "state", "tokens", "finish", "choice"))
FIELDS = ("evaluation_id", "kind", "run_id", "base_run_id") + ITEM_FIELDS + ("ratings",)


def records(evaluation_id: int, *, rater: str | None) -> list[dict[str, Any]]:
    """One dict per question (ratings as a list of {rater, verdict, preferred, note}). ``rater``: who asks, in
    the app (refused with StillBlind while that rater has not finished a blind rating); None: the shell, whose
    user holds the database itself."""
    evaluation = get_evaluation(evaluation_id)
    if evaluation is None:
        raise EvaluationError(f"evaluation {evaluation_id} does not exist")
    if rater is not None:
        require_unblinded(evaluation_id, rater)
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


def export_jsonl(evaluation_id: int, path: Path | None = None, *, rater: str | None) -> Path:
    path = write_jsonl(path or _path(evaluation_id, "jsonl"), records(evaluation_id, rater=rater))
    keep_quietly(path)  # final once written: to the bucket, where one is mounted
    return path


def export_csv(evaluation_id: int, path: Path | None = None, *, rater: str | None) -> Path:
    """One row a question; its ratings as JSON in one cell."""
    path = write_csv(path or _path(evaluation_id, "csv"), FIELDS, records(evaluation_id, rater=rater))
    keep_quietly(path)
    return path
