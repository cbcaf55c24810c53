"""Training data: load (Hub / uploaded file / bundled demo), map columns, split, fingerprint, format.

The Dataset tab's preview and the training process both go through :func:`prepare`, so what the preview
shows is what training uses.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcot_ui.prompts import PromptFormat
from medcot_ui.settings import DEMO_DATA_FILE


class DataError(ValueError):
    """Bad training data; the message names the file line, row or column."""


@dataclass(frozen=True)
class Row:
    question: str
    reasoning: str
    answer: str


@dataclass
class Prepared:
    train_rows: list[Row]
    eval_rows: list[Row]
    train_texts: list[str]
    eval_texts: list[str]
    fingerprint: str
    source: str
    warnings: list[str] = field(default_factory=list)


# ---- loading -------------------------------------------------------------------------------------------

def read_file(path: str | Path) -> list[dict[str, Any]]:
    """Read JSON (array), JSONL, CSV or Parquet into records."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: not UTF-8 text (byte {exc.start} cannot be decoded); "
                        "save the file as UTF-8") from None
    if suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path.name}: line {number} is not valid JSON ({exc.msg})") from None
        return records
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name}: not valid JSON at line {exc.lineno} ({exc.msg})") from None
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
            data = next(iter(data.values()))
        if not isinstance(data, list):
            raise DataError(f"{path.name}: expected a JSON array of row objects")
        return data
    if suffix == ".csv":
        import csv
        import io

        return list(csv.DictReader(io.StringIO(text)))
    raise DataError(f"{path.name}: unsupported file type '{suffix}' (use .json, .jsonl, .csv or .parquet)")


_SLICE = re.compile(r"^(?P<split>\w+)(\[(?P<a>-?\d*)(?P<ap>%?):(?P<b>-?\d*)(?P<bp>%?)\])?$")


def apply_slice(records: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """Apply a ``datasets``-style slice such as 'train[0:500]' or 'train[:10%]' to local records."""
    m = _SLICE.match(split.replace(" ", ""))
    if not m:
        raise DataError(f"split: cannot read '{split}'; use e.g. train, train[0:500] or train[:10%]")
    if m.group("a") is None and m.group("b") is None and "[" not in split:
        return records
    n = len(records)

    def bound(value: str, pct: str, default: int) -> int:
        if value == "":
            return default
        return int(n * int(value) / 100) if pct else int(value)

    return records[bound(m.group("a"), m.group("ap"), 0): bound(m.group("b"), m.group("bp"), n)]


def load_records(data: Any) -> tuple[list[dict[str, Any]], str, str]:
    """Records for a DataSettings, a description of the source, and a content hash or revision."""
    if data.source == "hub":
        return _load_hub(data)
    path = Path(DEMO_DATA_FILE if data.source == "demo" else data.file_path)
    if not path.exists():
        raise DataError(f"file_path: '{path}' does not exist")
    records = apply_slice(read_file(path), data.split)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    label = "demo data" if data.source == "demo" else path.name
    return records, f"{label} ({data.split})", f"sha256:{digest}"


class HubUnreachable(DataError):
    """The Hub could not be reached (no network); the demo data and uploads still work."""


def _load_hub(data: Any) -> tuple[list[dict[str, Any]], str, str]:
    import datasets

    try:
        ds = datasets.load_dataset(data.dataset_id, data.dataset_config or None, split=data.split)
    except (ConnectionError, OSError) as exc:
        raise HubUnreachable(
            f"Could not reach the Hugging Face Hub to load '{data.dataset_id}' ({type(exc).__name__}). "
            "Without a network, use the bundled demo data or upload a file.") from None
    except ValueError as exc:
        raise DataError(f"split: {exc}") from None
    revision = getattr(ds.info, "version", None)
    return ds.to_list(), f"{data.dataset_id}/{data.dataset_config} ({data.split})", \
        f"fingerprint:{ds._fingerprint}" + (f" version:{revision}" if revision else "")


# ---- mapping and formatting ----------------------------------------------------------------------------

def map_rows(records: list[dict[str, Any]], data: Any) -> list[Row]:
    """Pick the mapped columns from each record; errors name the row (1-based) and the column."""
    if not records:
        raise DataError("the dataset is empty: no rows to train on")
    columns = {"question_column": data.question_column, "reasoning_column": data.reasoning_column,
               "answer_column": data.answer_column}
    present = set().union(*(r.keys() for r in records[:50] if isinstance(r, dict)))
    for setting, column in columns.items():
        if column not in present:
            raise DataError(f"{setting}: column '{column}' is not in the data (columns: {sorted(present)})")
    rows = []
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            raise DataError(f"row {i}: expected an object with named columns, got {type(rec).__name__}")
        values = []
        for column in columns.values():
            value = rec.get(column)
            if not isinstance(value, str):
                raise DataError(f"row {i}, column '{column}': expected text, got "
                                f"{'nothing' if value is None else type(value).__name__}")
            if not value.strip():
                raise DataError(f"row {i}, column '{column}': empty")
            values.append(value)
        rows.append(Row(*values))
    return rows


def split_rows(rows: list[Row], eval_size: int, seed: int) -> tuple[list[Row], list[Row]]:
    """A seeded train / held-out split; the held-out rows are Compare's sample questions."""
    if eval_size <= 0:
        return rows, []
    if eval_size >= len(rows):
        raise DataError(f"eval_size: {eval_size} held-out rows leaves nothing to train on ({len(rows)} rows)")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:eval_size])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def fingerprint(data: Any, content: str) -> str:
    """Identifies exactly what was trained on: source, revision or file hash, slice, mapping and template."""
    fmt = PromptFormat.from_data_settings(data)
    parts = {"source": data.source, "dataset": data.dataset_id if data.source == "hub" else "",
             "config": data.dataset_config if data.source == "hub" else "", "content": content,
             "split": data.split, "mapping": [data.question_column, data.reasoning_column, data.answer_column],
             "template": fmt.kind, "template_text": fmt.template if fmt.kind == "custom" else "",
             "eval": [data.eval_size, data.split_seed]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def prepare(data: Any, tokenizer: Any) -> Prepared:
    """Everything the trainer needs: mapped rows, the split, the exact training texts and the fingerprint."""
    records, source, content = load_records(data)
    rows = map_rows(records, data)
    train, held = split_rows(rows, data.eval_size, data.split_seed)
    fmt = PromptFormat.from_data_settings(data)
    return Prepared(
        train_rows=train, eval_rows=held,
        train_texts=[fmt.training_text(r.question, r.reasoning, r.answer, tokenizer) for r in train],
        eval_texts=[fmt.training_text(r.question, r.reasoning, r.answer, tokenizer) for r in held],
        fingerprint=fingerprint(data, content), source=source)
