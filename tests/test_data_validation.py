"""Bad training data gets an error a person can act on: it names the line, the row or the column.

Every case writes a real file into a temp dir and goes through the same loader the training process uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medcot_ui.training.config import DataSettings
from medcot_ui.data.load import duplicate_warning, load, map_rows, prepare, read_file
from medcot_ui.errors import DataError

GOOD = {"Question": "What does an inferior STEMI look like?", "Complex_CoT": "Leads II, III and aVF look at the "
        "inferior wall.", "Response": "ST elevation in II, III and aVF."}


def settings(path: Path, **kw: object) -> DataSettings:
    return DataSettings(source="file", file_path=str(path), split="train", **kw)


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def error_of(path: Path, **kw: object) -> str:
    data = settings(path, **kw)
    with pytest.raises(DataError) as exc:
        map_rows(load(data).records, data)
    return str(exc.value)


def test_a_file_that_is_not_utf8_is_rejected_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"Question": "Pr\u00e9sentation"}'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.jsonl: line 2 is not UTF-8 text.*save the file as UTF-8"):
        read_file(path)


def test_a_jsonl_line_that_is_not_json_is_named_by_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n{\"Question\": \"unterminated\n",
                    encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_file(path)
    assert str(err.value) == "broken.jsonl: line 4 is not valid JSON at column 27 (invalid control character)"


def test_a_jsonl_line_that_is_json_but_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / "lists.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(["a", "b", "c"]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2 is a JSON array, not an object with named columns"):
        read_file(path)


def test_a_json_file_with_a_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text('[\n  {"Question": "a",\n   "Response" "b"}\n]', encoding="utf-8")
    with pytest.raises(DataError, match=r"rows\.json: not valid JSON at line 3, column 15"):
        read_file(path)


@pytest.mark.parametrize("name,content", [("empty.jsonl", b""), ("blank.json", b"  \n\n"), ("empty.csv", b""),
                                          ("empty.parquet", b"")])
def test_an_empty_file_is_rejected_as_empty(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"{name}: the file is empty"):
        read_file(path)


def test_a_csv_with_only_a_header_has_no_rows_to_train_on(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("Question,Complex_CoT,Response\n", encoding="utf-8")
    assert "the dataset is empty: no rows to train on" in error_of(path)


HEADER = "Question,Complex_CoT,Response\n"


@pytest.mark.parametrize("content, message", [
    (HEADER + "q1,r1,a1\nq2,r2,a2,stray\nq3,r3,a3\n", "the row on line 3 has 4 cells but the header names 3"),
    (HEADER + "q1,r1,a1\nq2,r2\nq3,r3,a3\n", "the row on line 3 has 2 cells but the header names 3"),
    # a quoted cell may run over lines; a quote left open swallows the rest: named from where its row starts
    (HEADER + 'q1,"r1\nstill r1",a1\n"q2 open,r2,a2\nq3,r3,a3\n', "the row on lines 4-5 has 1 cell but the header"),
    ("Question,Response,Response\nq,a,b\n", "line 1 names the column 'Response' more than once"),
], ids=["extra cell", "missing cell", "quote left open", "column named twice"])
def test_a_broken_csv_is_refused_naming_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "notes.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"notes.csv: {message}")):
        read_file(path)


def test_an_unsupported_file_type_says_which_types_work(tmp_path: Path) -> None:
    path = tmp_path / "rows.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=r"rows\.xlsx: unsupported file type '\.xlsx' \(use \.json, \.jsonl"):
        read_file(path)


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match=r"rows\.parquet: not a readable Parquet file"):
        read_file(path)


def test_a_missing_required_column_names_the_setting_and_lists_the_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"Question": "q", "Response": "a", "notes": "x"}])
    message = error_of(path)
    assert "reasoning column (data.reasoning_column): this data has no column 'Complex_CoT'" in message
    assert "columns: Question, Response, notes" in message


def test_empty_and_missing_cells_name_the_row_and_column(tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "Response": "   "}, {k: v for k, v in GOOD.items() if k != "Complex_CoT"}]
    message = error_of(write_jsonl(tmp_path / "rows.jsonl", rows))
    assert "2 problems" in message
    assert "row 2, column 'Response': empty" in message
    assert "row 3, column 'Complex_CoT': missing" in message


def test_non_text_cells_name_the_row_column_and_what_was_found(tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "Question": 42}, {**GOOD, "Complex_CoT": ["step 1", "step 2"]},
            {**GOOD, "Response": None}]
    problems = _problems(write_jsonl(tmp_path / "rows.jsonl", rows))
    assert problems == ["row 2, column 'Question': expected text, got a number (42)",
                        "row 3, column 'Complex_CoT': expected text, got a list",
                        "row 4, column 'Response': expected text, got nothing"]


def test_non_text_cells_in_a_parquet_file_name_the_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"Question": ["q1", "q2"], "Complex_CoT": ["r1", "r2"], "Response": [1, 2]}), path)
    problems = _problems(path)
    assert problems[0] == "row 1, column 'Response': expected text, got a number (1)"


def test_a_json_array_element_that_is_not_an_object_is_refused_at_reading_naming_its_row(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([GOOD, "just a string"]), encoding="utf-8")
    assert "rows.json: rows are not objects: row 2 is a JSON string" in error_of(path)


def test_many_problems_are_all_counted_and_the_first_ones_listed(tmp_path: Path) -> None:
    rows = [{**GOOD, "Response": ""} for _ in range(30)]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    message = error_of(path)
    assert message.startswith("30 problems in the mapped columns: row 1, column 'Response': empty")
    assert "and 22 more" in message
    assert len(_problems(path)) == 30


def _problems(path: Path) -> list[str]:
    data = settings(path)
    with pytest.raises(DataError) as exc:
        map_rows(load(data).records, data)
    return exc.value.problems


def test_duplicate_rows_are_a_warning_naming_both_rows(tmp_path: Path) -> None:
    other = {**GOOD, "Question": "Another question?"}
    path = write_jsonl(tmp_path / "rows.jsonl", [GOOD, other, GOOD, other, GOOD])
    data = settings(path)
    rows = map_rows(load(data).records, data)
    warning = duplicate_warning(rows)
    assert warning is not None
    assert warning.startswith("3 duplicate rows (row 3 repeats row 1, row 4 repeats row 2, row 5 repeats row 1)")


def test_prepare_keeps_duplicates_and_carries_the_warning(tmp_path: Path, home: Path) -> None:
    from medcot_ui.data.stats import tokenizer_for

    path = write_jsonl(tmp_path / "rows.jsonl", [GOOD, GOOD, {**GOOD, "Question": "q"}])
    prepared = prepare(settings(path), tokenizer_for("demo:tiny-llama").tokenizer)
    assert len(prepared.train_texts) == 3
    assert prepared.warnings and "row 2 repeats row 1" in prepared.warnings[0]


def test_csv_cells_longer_than_the_csv_modules_default_limit_are_read(tmp_path: Path) -> None:
    long_reasoning = "step " * 40_000  # 200 kB, over csv's 128 kB default field limit
    path = tmp_path / "long.csv"
    path.write_text(f'Question,Complex_CoT,Response\n"q","{long_reasoning}","a"\n', encoding="utf-8")
    assert read_file(path)[0]["Complex_CoT"] == long_reasoning
