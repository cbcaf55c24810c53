"""Training data: load (Hub / uploaded file / bundled demo), map columns, split, fingerprint, format.

The Dataset tab's preview and the training process both go through :func:`prepare`, so what the preview
shows is what training uses.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcot_ui.data.columns import columns_of, expand_chat
from medcot_ui.data.hub import load_hub
from medcot_ui.errors import DataError
from medcot_ui.data.parquet_read import ParquetTooLarge, read_parquet
from medcot_ui.training.prompts import PromptFormat
from medcot_ui.settings import DEMO_DATA_FILE


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
    # Every row and its training text in dataset order, and which of them are held out (0-based): the preview
    # shows row i as texts[i], the same string that is in train_texts or eval_texts.
    rows: list[Row] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    eval_indices: list[int] = field(default_factory=list)


@dataclass
class Loaded:
    """Records as read from a source, before mapping (the Dataset tab keeps this to re-map without re-reading)."""

    records: list[dict[str, Any]]
    source: str
    content: str  # file hash or Hub fingerprint/revision: part of the dataset fingerprint
    key: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return columns_of(self.records)


# ---- loading -------------------------------------------------------------------------------------------

FILE_TYPES = (".json", ".jsonl", ".csv", ".parquet")
_EXTRA_CELLS, _MISSING_CELL = "\0extra", object()  # markers for a CSV row that does not fit its header
# Reasoning cells are long; the csv module's default 128 KiB cell limit would reject real rows.
csv.field_size_limit(64 * 2**20)


def read_file(path: str | Path, name: str | None = None, max_rows: int | None = None,
              max_bytes: int | None = None) -> list[dict[str, Any]]:
    """Read JSON (array), JSONL, CSV or Parquet into records; errors name the file and the line. The limits
    (an upload's) bound what a compressed Parquet file may expand to, checked before its rows are decoded."""
    path = Path(path)
    name = name or path.name
    suffix = Path(name).suffix.lower()
    if suffix not in FILE_TYPES:
        raise DataError(f"{name}: unsupported file type '{suffix}' (use .json, .jsonl, .csv or .parquet)")
    if suffix == ".jsonl":
        return _read_jsonl(path, name)
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{name}: the file is empty")
    if suffix == ".parquet":
        import pyarrow as pa

        try:
            return read_parquet(raw, name, max_rows, max_bytes)
        except ParquetTooLarge as exc:
            raise DataError(str(exc)) from None
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{name}: not a readable Parquet file ({exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}: line {line} is not UTF-8 text (byte {exc.start} cannot be decoded); "
                        "save the file as UTF-8") from None
    if suffix == ".json":
        return _json_rows(text, name)
    # restkey/restval: DictReader files extra cells under None and fills missing ones with None; we name the line.
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA_CELLS, restval=_MISSING_CELL)
    records = []
    start = 1  # the line the next record starts on (a quoted cell may run over several lines)
    try:
        header = reader.fieldnames or []
        if repeated := sorted({c for c in header if header.count(c) > 1}):
            raise DataError(f"{name}: line 1 names the column {', '.join(repr(c) for c in repeated)} more than "
                            "once; give every column its own name")
        start = reader.line_num + 1
        for row in reader:
            where = f"line {start}" if reader.line_num == start else f"lines {start}-{reader.line_num}"
            extra = row.pop(_EXTRA_CELLS, [])
            missing = sum(value is _MISSING_CELL for value in row.values())
            if extra or missing:
                cells = len(header) - missing + len(extra)
                raise DataError(f"{name}: the row on {where} has {cells} cell{'s' * (cells != 1)} but the header names "
                                f"{len(header)} columns (a missing or extra comma, or a quote left open?)")
            records.append(row)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{name}: line {start} is not valid CSV ({exc})") from None
    return records


def _json_rows(text: str, name: str) -> list[dict[str, Any]]:
    """A JSON array of row objects (or {"data": [...]}); a row that is not an object is refused by number."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: not valid JSON at line {exc.lineno}, column {exc.colno} "
                        f"({_json_problem(exc)})") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"data": [...]} / {"train": [...]}
    if not isinstance(data, list):
        raise DataError(f"{name}: expected a JSON array of row objects")
    if (bad := next((i for i, row in enumerate(data) if not isinstance(row, dict)), None)) is not None:
        raise DataError(f"{name}: rows are not objects: row {bad + 1} is a JSON {_json_type(data[bad])}, not an "
                        'object with named columns such as {"Question": ..., "Response": ...}')
    return data


def _read_jsonl(path: Path, name: str) -> list[dict[str, Any]]:
    """Line by line, so a large file is never held in memory twice (bytes and text) on top of its rows."""
    records = []
    offset = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{name}: line {number} is not UTF-8 text (byte {offset + exc.start} cannot be "
                                "decoded); save the file as UTF-8") from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{name}: line {number} is not valid JSON at column {exc.colno} "
                                f"({_json_problem(exc)})") from None
            if not isinstance(record, dict):
                raise DataError(f"{name}: line {number} is a JSON {_json_type(record)}, "
                                "not an object with named columns")
            records.append(record)
    if not records:  # every line was blank
        raise DataError(f"{name}: the file is empty")
    return records


def _json_problem(exc: json.JSONDecodeError) -> str:
    """json's message without its trailing 'starting at' / 'at' (we say where ourselves): 'unterminated string'."""
    return re.sub(r"( starting)? at$", "", exc.msg).lower()


def _json_type(value: Any) -> str:
    names = {str: "string", list: "array", bool: "true/false", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


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


def source_key(data: Any) -> tuple[str, ...]:
    """What identifies the loaded records (not the mapping or template): equal keys need no re-read. The name a
    file was uploaded as is part of it: records loaded for one person never show another's name for the same bytes."""
    if data.source == "hub":
        return ("hub", data.dataset_id, data.dataset_config, data.split)
    if data.source == "file":
        return ("file", data.file_path, data.file_name, data.split)
    return (data.source, "", data.split)


def load(data: Any) -> Loaded:
    """Read the configured source; chat rows get their derived question/reasoning/answer columns."""
    if data.source == "hub":
        records, source, content = load_hub(data)
    else:
        path = Path(DEMO_DATA_FILE if data.source == "demo" else data.file_path)
        if not path.exists():
            raise DataError(f"file_path: '{path}' does not exist")
        records = apply_slice(read_file(path), data.split)
        content = "sha256:" + file_sha256(path)[:16]
        source = f"{'demo data' if data.source == 'demo' else data.file_label()} ({data.split})"
    expand_chat(records)
    return Loaded(records, source, content, source_key(data))


def file_sha256(path: Path) -> str:
    """The file's content hash (hex): what names a stored upload and fingerprints a data file."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# ---- mapping and formatting ----------------------------------------------------------------------------

MAX_LISTED = 8  # problems spelled out in one message; the rest are counted


def _listing(problems: list[str]) -> str:
    more = len(problems) - MAX_LISTED
    return "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


def _describe_cell(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"true/false ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return f"a {type(value).__name__}"


def map_rows(records: list[dict[str, Any]], data: Any) -> list[Row]:
    """Pick the mapped columns from each record; errors name the row (1-based) and the column."""
    if not records:
        raise DataError("the dataset is empty: no rows to train on")
    columns = {"question": data.question_column, "reasoning": data.reasoning_column, "answer": data.answer_column}
    present = columns_of(records)
    missing = [f"{role} column (data.{role}_column): this data has no column '{column}'"
               for role, column in columns.items() if column not in present]
    if missing:
        raise DataError(f"{_listing(missing)} (columns: {', '.join(present) or 'none'})", missing)
    problems: list[str] = []
    rows = []
    for i, rec in enumerate(records, start=1):
        values = []
        for column in columns.values():
            value = rec.get(column)
            if not isinstance(value, str):
                problems.append(f"row {i}, column '{column}': "
                                + ("missing" if column not in rec else f"expected text, got {_describe_cell(value)}"))
            elif not value.strip():
                problems.append(f"row {i}, column '{column}': empty")
            values.append(value)
        rows.append(Row(*values))
    if problems:
        raise DataError(f"{len(problems)} problem{'s' * (len(problems) > 1)} in the mapped columns: "
                        f"{_listing(problems)}", problems)
    return rows


def duplicate_rows(rows: list[Row]) -> list[tuple[int, int]]:
    """(row, earlier row it repeats), 1-based, for rows identical in question, reasoning and answer."""
    first: dict[Row, int] = {}
    repeats = []
    for i, row in enumerate(rows, start=1):
        if row in first:
            repeats.append((i, first[row]))
        else:
            first[row] = i
    return repeats


def duplicate_warning(rows: list[Row]) -> str | None:
    repeats = duplicate_rows(rows)
    if not repeats:
        return None
    listed = ", ".join(f"row {i} repeats row {j}" for i, j in repeats[:MAX_LISTED])
    more = f", and {len(repeats) - MAX_LISTED} more" if len(repeats) > MAX_LISTED else ""
    return (f"{len(repeats)} duplicate row{'s' * (len(repeats) > 1)} ({listed}{more}); they are kept and "
            "weigh more in training: remove them from the file if that is not intended")


def held_out_indices(n: int, eval_size: int, seed: int) -> list[int]:
    """The seeded held-out rows (0-based, ascending)."""
    if eval_size <= 0:
        return []
    if eval_size >= n:
        raise DataError(f"eval_size: {eval_size} held-out rows leaves nothing to train on ({n} rows)")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[:eval_size])


def fingerprint(data: Any, content: str) -> str:
    """Identifies exactly what was trained on: source, revision or file hash, slice, mapping and template."""
    fmt = PromptFormat.from_data_settings(data)
    parts = {"source": data.source, "dataset": data.dataset_id if data.source == "hub" else "",
             "config": data.dataset_config if data.source == "hub" else "", "content": content,
             "split": data.split, "mapping": [data.question_column, data.reasoning_column, data.answer_column],
             "template": fmt.kind, "template_text": fmt.template if fmt.kind == "custom" else "",
             "eval": [data.eval_size, data.split_seed]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def prepare(data: Any, tokenizer: Any, *, loaded: Loaded | None = None) -> Prepared:
    """Everything the trainer needs: mapped rows, the split, the exact training texts and the fingerprint.

    ``loaded``: records already read for these settings (the Dataset tab re-maps without re-reading).
    """
    if loaded is None or loaded.key != source_key(data):
        loaded = load(data)
    rows = map_rows(loaded.records, data)
    held = held_out_indices(len(rows), data.eval_size, data.split_seed)
    fmt = PromptFormat.from_data_settings(data)
    texts = [fmt.training_text(r.question, r.reasoning, r.answer, tokenizer) for r in rows]
    held_set = set(held)
    keep = [i for i in range(len(rows)) if i not in held_set]
    warning = duplicate_warning(rows)
    return Prepared(
        train_rows=[rows[i] for i in keep], eval_rows=[rows[i] for i in held],
        train_texts=[texts[i] for i in keep], eval_texts=[texts[i] for i in held],
        fingerprint=fingerprint(data, loaded.content), source=loaded.source,
        warnings=[warning] if warning else [], rows=rows, texts=texts, eval_indices=held)
