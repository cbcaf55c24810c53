"""The held-out split a run trained with, stored in its folder at training time (the row indices and the dataset
fingerprint), so Compare and Evaluate ask exactly the questions training left out, and say so when the dataset
has changed since."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medcot_ui.errors import DataError

SPLIT_FILE = "held_out.json"  # in the run's folder


@dataclass(frozen=True)
class StoredSplit:
    indices: tuple[int, ...]  # 0-based rows of the mapped dataset, ascending
    fingerprint: str  # data/load.fingerprint of what was trained on
    rows: int  # how many rows the dataset had


def save_split(folder: Path, prepared: Any) -> None:
    """Record ``prepared``'s held-out rows (the training process calls this once its data is prepared)."""
    split = StoredSplit(tuple(prepared.eval_indices), prepared.fingerprint, len(prepared.rows))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPLIT_FILE).write_text(json.dumps(asdict(split)))


def read_split(folder: Path) -> StoredSplit | None:
    """The stored split; None for a run trained before splits were stored."""
    path = folder / SPLIT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return StoredSplit(tuple(int(i) for i in data["indices"]), str(data["fingerprint"]), int(data["rows"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a held-out split this version reads ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class HeldOut:
    rows: list[Any]  # data/load.Row: question, reasoning, answer
    warning: str | None  # why these may not be the questions training left out
    trained: list[Any]  # the other rows: what training saw (the contamination check reads these)


def held_out_of(prepared: Any, stored: StoredSplit | None) -> HeldOut:
    """The rows ``stored`` names in today's ``prepared`` dataset, with a warning when that dataset changed."""
    if stored is None:
        return HeldOut(list(prepared.eval_rows), "this run stored no held-out split (it trained before splits were "
                                                 "stored): its held-out rows are split again from its seed",
                       list(prepared.train_rows))
    kept = set(stored.indices)
    rows = [prepared.rows[i] for i in stored.indices if i < len(prepared.rows)]
    trained = [row for i, row in enumerate(prepared.rows) if i not in kept]
    if stored.fingerprint == prepared.fingerprint:
        return HeldOut(rows, None, trained)
    return HeldOut(rows, f"the dataset changed since this run trained (fingerprint {stored.fingerprint}, "
                         f"{stored.rows} rows then; {prepared.fingerprint}, {len(prepared.rows)} rows now): the "
                         "held-out row numbers may now hold other questions, perhaps ones it trained on", trained)
