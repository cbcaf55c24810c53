"""Keep every Compare-tab comparison: store it, list it, mark the preferred answer, export JSONL and CSV.

CSV exports are opened in spreadsheets, where a cell starting with ``=``, ``+``, ``-`` or ``@`` (or a tab or
carriage return) is run as a formula; model output is untrusted text, so such cells are prefixed with ``'``.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlmodel import select

from medcot_ui.compare.panes import CompareUpdate, Pane
from medcot_ui.errors import MedcotError
from medcot_ui.record_files import write_csv, write_jsonl
from medcot_ui.settings import get_settings
from medcot_ui.store import Comparison, Run, live_runs, read_session, write_session
from medcot_ui.units import shorten, when

PREFERENCES = ("base", "tuned", "tie")
# Export columns, in order (the JSONL objects have the same keys, with settings as an object).
EXPORT_FIELDS = (
    "id", "created_at", "run_id", "base_model", "device", "question", "settings",
    "base_reasoning", "base_answer", "base_state", "base_finish", "base_tokens", "base_seconds",
    "base_first_token_s",
    "tuned_reasoning", "tuned_answer", "tuned_state", "tuned_finish", "tuned_tokens", "tuned_seconds",
    "tuned_first_token_s",
    "stopped", "preferred", "note", "reference_reasoning", "reference_answer", "prompt",
)


class ComparisonError(MedcotError, ValueError):
    """A request about stored comparisons that cannot be done; the message names the field."""


def record(update: CompareUpdate, reference: Any | None = None) -> Comparison:
    """Store a finished (or stopped) comparison with both outputs split into reasoning and answer."""
    if update.base is None or update.tuned is None:
        raise ComparisonError("comparison: nothing was generated, so there is nothing to store")
    row = Comparison(run_id=update.run_id, created_at=update.created_at, question=update.question,
                     settings_json=json.dumps(update.settings.model_dump()), stopped=update.stopped,
                     base_model=update.base_model, device=update.device, prompt=update.prompt,
                     reference_reasoning=getattr(reference, "reasoning", None),
                     reference_answer=getattr(reference, "answer", None))
    for side, pane in (("base", update.base), ("tuned", update.tuned)):
        comp = pane.completion
        values = {"reasoning": comp.reasoning, "answer": comp.answer, "state": comp.state,
                  "finish": pane.finish_reason, "tokens": pane.tokens,
                  "seconds": round(pane.seconds, 3) if pane.seconds is not None else None,
                  "first_token_s": round(pane.first_token_s, 3) if pane.first_token_s is not None else None}
        for key, value in values.items():
            setattr(row, f"{side}_{key}", value)
    with write_session() as s:
        s.add(row)
        s.flush()
        s.refresh(row)
    return row


def list_comparisons(run_id: int | None = None, limit: int = 500) -> list[Comparison]:
    """Stored comparisons, newest first (of one run, or all)."""
    with read_session() as s:
        # A deleted run's comparisons leave the list with it (and come back if it is restored).
        of_live_run = or_(Comparison.run_id.is_(None), Comparison.run_id.in_(select(Run.id).where(live_runs())))
        q = select(Comparison).where(of_live_run).order_by(Comparison.id.desc()).limit(limit)
        if run_id is not None:
            q = q.where(Comparison.run_id == run_id)
        return list(s.exec(q))


def stored_pane(row: Comparison, side: str) -> Pane:
    """A saved comparison's pane, rebuilt for display (text re-joined the way the model wrote it)."""
    reasoning, answer, state = (getattr(row, f"{side}_{k}") for k in ("reasoning", "answer", "state"))
    text = f"{reasoning}\n</think>\n{answer}" if state == "closed" else (reasoning if state == "unclosed" else answer)
    pane = Pane("Base model" if side == "base" else "Tuned", prompt_opened_think=state != "none", text=text or "",
                finish_reason=getattr(row, f"{side}_finish") or "eos")
    pane.tokens = getattr(row, f"{side}_tokens") or 0
    pane.seconds = getattr(row, f"{side}_seconds")
    pane.first_token_s = getattr(row, f"{side}_first_token_s")
    return pane


def get_comparison(comparison_id: int) -> Comparison | None:
    with read_session() as s:
        return s.get(Comparison, comparison_id)


def mark_preference(comparison_id: int | None, preferred: str | None, note: str | None = None) -> Comparison:
    """Record which answer the user prefers ("base", "tuned" or "tie"; None clears it) and an optional note."""
    if comparison_id is None:
        raise ComparisonError("Run a comparison (or pick a saved one) before marking which answer you prefer.")
    if preferred is not None and preferred not in PREFERENCES:
        raise ComparisonError(f"preferred: '{preferred}' is not one of {', '.join(PREFERENCES)}")
    with write_session() as s:
        row = s.get(Comparison, int(comparison_id))
        if row is None:
            raise ComparisonError(f"comparison: {comparison_id} does not exist")
        row.preferred = preferred
        row.note = (note or "").strip() or None
        s.add(row)
    return row


def as_record(row: Comparison) -> dict[str, Any]:
    """One comparison as a plain dict with the export columns (settings as an object)."""
    out = {name: getattr(row, name, None) for name in EXPORT_FIELDS if name != "settings"}
    out["settings"] = json.loads(row.settings_json or "{}")
    out["created_at"] = datetime.fromtimestamp(row.created_at, timezone.utc).isoformat(timespec="seconds")
    return {name: out[name] for name in EXPORT_FIELDS}


def _export_path(suffix: str, run_id: int | None) -> Path:
    folder = get_settings().exports_dir
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    scope = f"run-{run_id}" if run_id is not None else "all"
    path = folder / f"comparisons-{scope}-{stamp}.{suffix}"
    n = 1
    while path.exists():  # two exports in the same second keep both files
        n += 1
        path = folder / f"comparisons-{scope}-{stamp}-{n}.{suffix}"
    return path


def export_jsonl(run_id: int | None = None, path: Path | None = None) -> Path:
    """Write the comparisons (of one run, or all), oldest first, one JSON object per line."""
    rows = reversed(list_comparisons(run_id, limit=1_000_000))
    return write_jsonl(path or _export_path("jsonl", run_id), (as_record(row) for row in rows))


def export_csv(run_id: int | None = None, path: Path | None = None) -> Path:
    """Write the comparisons as CSV (settings as JSON in one cell, formula cells escaped)."""
    rows = reversed(list_comparisons(run_id, limit=1_000_000))
    return write_csv(path or _export_path("csv", run_id), EXPORT_FIELDS, (as_record(row) for row in rows))


def table(run_id: int | None = None, limit: int = 200) -> list[list[Any]]:
    """Rows for the saved-comparisons list: id, when, run, question, both answers (short), preference."""
    out = []
    for row in list_comparisons(run_id, limit):
        stamp = when(row.created_at)
        out.append([row.id, stamp, row.run_id, shorten(row.question),
                    shorten(row.base_answer) or f"({row.base_state} reasoning)",
                    shorten(row.tuned_answer) or f"({row.tuned_state} reasoning)",
                    ended(row), row.preferred or "", shorten(row.note, 40)])
    return out


def ended(row: Comparison) -> str:
    """How the comparison ended, for the table: stopped by the user, cut at the token limit (which pane), or
    both answers finished."""
    if row.stopped:
        return "stopped"
    cut = [side for side in ("base", "tuned") if getattr(row, f"{side}_finish") == "length"]
    return f"token limit ({' and '.join(cut)})" if cut else "finished"


TABLE_HEADERS = ["id", "when", "run", "question", "base answer", "tuned answer", "ended", "preferred", "note"]
