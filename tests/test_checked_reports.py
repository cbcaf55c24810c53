"""Checked datasets live on the server, bounded and shared: a browser session keeps only a key, a second session
re-maps records another one read without reading them again, and the least recently used check is dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcot_ui.data import load as data
from medcot_ui.training.config import DataSettings
from medcot_ui.data.report import CheckedReports, analyse, row_preview_texts
from medcot_ui.settings import DEMO_MODEL_ID


def rows_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"Question": f"q{i}", "Complex_CoT": f"r{i}", "Response": f"a{i}"}) + "\n"
                            for i in range(n)))
    return path


def file_settings(path: Path, **changes: object) -> DataSettings:
    return DataSettings(source="file", file_path=str(path), split="train", eval_size=0, **changes)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time records are read from a source."""
    seen: list[str] = []
    real = data.read_file

    def counting(path: object, name: str | None = None) -> list[dict]:
        seen.append(str(path))
        return real(path, name)

    monkeypatch.setattr(data, "read_file", counting)
    return seen


def test_a_second_session_remaps_records_another_read_without_reading_them_again(home: Path, tmp_path: Path,
                                                                                reads: list[str]) -> None:
    checked = CheckedReports(capacity=4)
    path = rows_file(tmp_path / "rows.jsonl", 12)
    first = checked.put(analyse(file_settings(path), DEMO_MODEL_ID, 512, loaded=checked.loaded_for(
        file_settings(path))))
    assert len(reads) == 1
    # Another browser: same file, another template. The records are reused; the rows are mapped anew.
    other = file_settings(path, template="chat_template")
    second = checked.put(analyse(other, DEMO_MODEL_ID, 512, loaded=checked.loaded_for(other)))
    assert len(reads) == 1
    assert checked.get(first).loaded is checked.get(second).loaded
    assert checked.get(second).data.template == "chat_template" and len(checked.get(second).prepared.rows) == 12
    # A different file is read, of course.
    path2 = rows_file(tmp_path / "more.jsonl", 3)
    assert checked.loaded_for(file_settings(path2)) is None


def test_past_its_capacity_the_least_recently_used_check_is_dropped(home: Path, tmp_path: Path) -> None:
    checked = CheckedReports(capacity=2)
    keys = []
    for i in range(3):
        path = rows_file(tmp_path / f"rows{i}.jsonl", 2)
        keys.append(checked.put(analyse(file_settings(path), DEMO_MODEL_ID, 512)))
        if i == 1:
            assert checked.get(keys[0]) is not None  # looking at the first makes the second the oldest
    assert len(checked) == 2
    assert checked.get(keys[1]) is None
    assert checked.get(keys[0]) is not None and checked.get(keys[2]) is not None
    assert checked.get(None) is None and checked.get("not-a-key") is None


@pytest.mark.parametrize("asked, shown", [(999, 3), (0, 1), (-3, 1), (2, 2)])
def test_a_row_number_out_of_range_previews_the_nearest_row_and_says_so(home: Path, tmp_path: Path, asked: int,
                                                                       shown: int) -> None:
    report = analyse(file_settings(rows_file(tmp_path / "rows.jsonl", 3)), DEMO_MODEL_ID, 512)
    info, text, prompt = row_preview_texts(report, asked)
    assert f"Row {shown} of 3" in info and f"q{shown - 1}" in text and prompt
    assert ("There is no row" in info) == (asked != shown)
