"""Uploads: our own size and row limits, a stable content-addressed copy, and nothing left of a rejected file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcot_ui.training.config import DataSettings
from medcot_ui.data.load import load
from medcot_ui.data.uploads import UploadLimits, UploadRejected, accept_upload

ROW = {"Question": "q?", "Complex_CoT": "because", "Response": "a."}


def incoming(tmp_path: Path, name: str, content: bytes) -> Path:
    """A file where the web server would have put the upload (its own temp folder)."""
    folder = tmp_path / "server-tmp" / "abc123"
    folder.mkdir(parents=True)
    path = folder / name
    path.write_bytes(content)
    return path


def jsonl(n: int) -> bytes:
    return "".join(json.dumps({**ROW, "Question": f"q{i}?"}) + "\n" for i in range(n)).encode()


def test_an_accepted_upload_is_stored_under_its_content_hash_and_loads_as_the_run_config_names_it(
        home: Path, tmp_path: Path) -> None:
    path = incoming(tmp_path, "my rows.jsonl", jsonl(3))
    accepted = accept_upload(path)
    assert accepted.path.parent == home / "uploads"
    assert accepted.path.suffix == ".jsonl" and len(accepted.path.stem) == 20
    assert (accepted.rows, accepted.columns, accepted.original_name) == (3, ["Question", "Complex_CoT", "Response"],
                                                                         "my rows.jsonl")
    again = accept_upload(incoming(tmp_path / "second", "renamed.jsonl", jsonl(3)))
    assert again.path == accepted.path  # same content, same stable file
    assert len(list((home / "uploads").iterdir())) == 1
    records = load(DataSettings(source="file", file_path=str(accepted.path), split="train")).records
    assert [r["Question"] for r in records] == ["q0?", "q1?", "q2?"]


def _assert_nothing_left(home: Path, path: Path) -> None:
    assert not path.exists() and not path.parent.exists()
    uploads = home / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_a_file_over_the_size_limit_is_rejected_before_reading_and_nothing_is_left(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDCOT_UPLOAD_MAX_MB", "0.001")  # about 1 KB
    path = incoming(tmp_path, "big.jsonl", jsonl(40))
    with pytest.raises(UploadRejected, match=r"big\.jsonl: 2\.\d KB is over the upload limit of 1\.0 KB "
                                             r"\(MEDCOT_UPLOAD_MAX_MB\)"):
        accept_upload(path)
    _assert_nothing_left(home, path)


def test_a_file_over_the_row_limit_is_rejected_and_nothing_is_left(home: Path, tmp_path: Path) -> None:
    path = incoming(tmp_path, "many.jsonl", jsonl(11))
    with pytest.raises(UploadRejected, match=r"many\.jsonl: 11 rows is over the limit of 10 rows"):
        accept_upload(path, limits=UploadLimits(max_bytes=10**6, max_rows=10))
    _assert_nothing_left(home, path)


def test_a_broken_jsonl_upload_is_rejected_with_its_line_number_and_nothing_is_left(home: Path,
                                                                                    tmp_path: Path) -> None:
    path = incoming(tmp_path, "broken.jsonl", jsonl(2) + b'{"Question": "oops",\n' + jsonl(1))
    with pytest.raises(UploadRejected, match=r"broken\.jsonl: line 3 is not valid JSON"):
        accept_upload(path)
    _assert_nothing_left(home, path)


@pytest.mark.parametrize("name,content,message", [
    ("empty.jsonl", b"", "the file is empty"),
    ("header.csv", b"Question,Complex_CoT,Response\n", "the file has no rows"),
    ("table.xlsx", b"PK", "unsupported file type '.xlsx'"),
    ("page.html", b"<script>alert(1)</script>", "unsupported file type '.html'"),
    ("notes.json", json.dumps([ROW, "just a sentence", ROW]).encode(),
     "notes.json: rows are not objects: row 2 is a JSON string, not an object with named columns"),
])
def test_empty_or_unsupported_uploads_are_rejected_and_nothing_is_left(home: Path, tmp_path: Path, name: str,
                                                                       content: bytes, message: str) -> None:
    path = incoming(tmp_path, name, content)
    with pytest.raises(UploadRejected, match=message.replace(".", r"\.")):
        accept_upload(path)
    _assert_nothing_left(home, path)


def test_only_files_stored_from_uploads_count_as_uploads(home: Path, tmp_path: Path) -> None:
    from medcot_ui.data.uploads import is_stored_upload

    stored = accept_upload(incoming(tmp_path, "rows.jsonl", jsonl(2))).path
    assert is_stored_upload(stored) and is_stored_upload(str(stored))
    assert not is_stored_upload(home / "uploads" / ".." / "runs.db")
    assert not is_stored_upload(home / "uploads" / "missing.jsonl")
    assert not is_stored_upload("/etc/passwd")
    for other in (".incoming-rows.jsonl", "notes.txt"):  # a half-written upload, something that is not data
        (home / "uploads" / other).write_text("x")
        assert not is_stored_upload(home / "uploads" / other)


def test_limits_come_from_the_environment_with_sensible_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDCOT_UPLOAD_MAX_MB", raising=False)
    monkeypatch.delenv("MEDCOT_UPLOAD_MAX_ROWS", raising=False)
    assert UploadLimits.from_env() == UploadLimits(200 * 2**20, 100_000)
    monkeypatch.setenv("MEDCOT_UPLOAD_MAX_MB", "5")
    monkeypatch.setenv("MEDCOT_UPLOAD_MAX_ROWS", "250")
    assert UploadLimits.from_env().describe() == "up to 5.0 MB and 250 rows"


def test_on_a_shared_server_a_run_may_train_only_on_uploaded_files(home, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from medcot_ui.training.config import parse_config
    from medcot_ui.data.uploads import data_file_problems

    elsewhere = tmp_path / "server-file.jsonl"
    elsewhere.write_text('{"Question": "q", "Complex_CoT": "c", "Response": "r"}\n')
    data = parse_config({"data": {"source": "file", "file_path": str(elsewhere)}}).data
    assert data_file_problems(data) == []  # local mode: one person, their own machine
    monkeypatch.setenv("MEDCOT_AUTH_MODE", "password")
    monkeypatch.setenv("MEDCOT_USERS", "alice:a-long-password")
    assert data_file_problems(data) == [
        "data.file_path: on a shared server only files uploaded in the Dataset tab can be trained on"]
    stored = home / "uploads" / "abc.jsonl"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(elsewhere.read_text())
    assert data_file_problems(data.model_copy(update={"file_path": str(stored)})) == []


def test_the_same_file_uploaded_under_two_names_is_shown_by_each_uploaders_name(home: Path, tmp_path: Path) -> None:
    from medcot_ui.data.report import CheckedReports, analyse
    from medcot_ui.runs.table import config_summary
    from medcot_ui.training.config import RunConfig

    mine = accept_upload(incoming(tmp_path / "a", "ward-7 audit.jsonl", jsonl(4)))
    theirs = accept_upload(incoming(tmp_path / "b", "cases.jsonl", jsonl(4)))
    assert mine.path == theirs.path, "one stored copy for equal bytes"
    checked = CheckedReports(4)
    shown = []
    for upload in (mine, theirs):
        data = DataSettings(source="file", file_path=str(upload.path), file_name=upload.original_name,
                            split="train")
        report = analyse(data, "demo:tiny-llama", 256, loaded=checked.loaded_for(data))
        checked.put(report)
        config = RunConfig(data=data)
        shown.append((report.prepared.source, config_summary(config.to_json())[1]))
    assert shown == [("ward-7 audit.jsonl (train)", "ward-7 audit.jsonl"), ("cases.jsonl (train)", "cases.jsonl")]


def parquet_bytes(tmp_path: Path, columns: dict[str, list[str]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table(columns), path, compression="zstd")
    return path.read_bytes()


def test_a_tiny_parquet_of_many_rows_is_refused_from_its_metadata_before_a_row_is_read(
        home: Path, tmp_path: Path) -> None:
    import tracemalloc

    raw = parquet_bytes(tmp_path, {k: [v] * 200_000 for k, v in ROW.items()})
    assert len(raw) < 50_000  # compresses to almost nothing
    path = incoming(tmp_path, "bomb.parquet", raw)
    tracemalloc.start()
    with pytest.raises(UploadRejected, match=r"bomb.parquet: 200,000 rows is over the limit of 1,000 rows"):
        accept_upload(path, limits=UploadLimits(max_bytes=2**20, max_rows=1000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2**20, f"{peak:,} bytes of Python objects: the rows were read"  # reading them costs ~50 MB
    assert not path.exists() and not (home / "uploads").exists()


def test_a_tiny_parquet_with_one_huge_cell_is_refused_naming_the_column(home: Path, tmp_path: Path) -> None:
    raw = parquet_bytes(tmp_path, {"Question": ["q?"], "Complex_CoT": ["because " * 2**20], "Response": ["a."]})
    assert len(raw) < 50_000
    path = incoming(tmp_path, "cell.parquet", raw)
    with pytest.raises(UploadRejected, match=r"cell.parquet: column 'Complex_CoT' of row group 0 holds 8.0 MB "
                                             r"uncompressed, over the upload limit of 1.0 MB \(MEDCOT_UPLOAD_MAX_MB\)"):
        accept_upload(path, limits=UploadLimits(max_bytes=2**20, max_rows=1000))
    assert not path.exists()
    small = incoming(tmp_path / "ok", "ok.parquet", parquet_bytes(tmp_path, {k: [v] * 3 for k, v in ROW.items()}))
    assert accept_upload(small, limits=UploadLimits(max_bytes=2**20, max_rows=1000)).rows == 3
