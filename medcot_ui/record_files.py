"""Writing rows (dicts) to the files people download: JSONL, and CSV that a spreadsheet opens safely.

Compare's saved comparisons and Evaluate's results both export through these two writers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text, never runs as a formula (numbers stay numbers)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """One JSON object per line, UTF-8 (accents kept as they are)."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    """``fields`` as the header, then each row's values in that order: UTF-8 with BOM so spreadsheets read accents,
    lists and dicts as JSON in one cell, formula-like cells escaped."""
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for row in rows:
            writer.writerow([escape_cell(json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
                             for v in (row[name] for name in fields)])
    return path
