"""Stored comparisons: every comparison is kept with both outputs split, listed, marked, and exported safely."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from medcot_ui.compare import stored as comparisons
from medcot_ui.compare.generation import GenerationSettings
from medcot_ui.compare.panes import CompareUpdate, Pane


def _pane(label: str, text: str, tokens: int, finish: str = "eos") -> Pane:
    pane = Pane(label, text=text, finish_reason=finish, seconds=2.5, first_token_s=0.2)  # type: ignore[arg-type]
    pane.tokens = tokens
    return pane


@pytest.fixture
def run_id(home: Path) -> int:
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.training.presets import quick_demo

    return enqueue("train", quick_demo()).id


def _update(run_id: int, question: str = "What does cystometry show?", base_text: str = "weighing\n</think>\nA",
            tuned_text: str = "unfinished thought", stopped: bool = False) -> CompareUpdate:
    return CompareUpdate("done", "Done.", run_id, question, GenerationSettings(max_new_tokens=64, greedy=True),
                         base=_pane("Base model", base_text, 12), tuned=_pane("Tuned", tuned_text, 64, "length"),
                         prompt=f"### Question:\n{question}\n<think>\n", base_model="demo:tiny-llama",
                         device="CPU (2 cores)", stopped=stopped)


def test_a_comparison_is_stored_with_both_outputs_split_into_reasoning_and_answer(run_id: int) -> None:
    reference = type("Row", (), {"reasoning": "ref reasoning", "answer": "ref answer"})()
    saved = comparisons.record(_update(run_id), reference)
    row = comparisons.get_comparison(saved.id)
    assert (row.base_reasoning, row.base_answer, row.base_state, row.base_tokens) == ("weighing", "A", "closed", 12)
    assert (row.tuned_reasoning, row.tuned_answer, row.tuned_state) == ("unfinished thought", "", "unclosed")
    assert row.tuned_finish == "length" and row.base_seconds == 2.5 and row.base_first_token_s == 0.2
    assert json.loads(row.settings_json) == {"max_new_tokens": 64, "temperature": 0.6, "top_p": 0.95,
                                             "seed": 3407, "greedy": True}
    assert row.reference_answer == "ref answer" and row.prompt.endswith("<think>\n")
    assert row.base_model == "demo:tiny-llama" and row.run_id == run_id


def test_comparisons_are_listed_newest_first_and_by_run(run_id: int) -> None:
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.training.presets import quick_demo

    other = enqueue("train", quick_demo()).id
    first = comparisons.record(_update(run_id, "first"))
    second = comparisons.record(_update(other, "second"))
    third = comparisons.record(_update(run_id, "third", stopped=True))
    assert [c.id for c in comparisons.list_comparisons()] == [third.id, second.id, first.id]
    assert [c.question for c in comparisons.list_comparisons(run_id)] == ["third", "first"]
    table = comparisons.table(run_id)
    assert table[0][3] == "third" and table[0][6] == "stopped" and table[0][5] == "(unclosed reasoning)"
    assert table[1][6] == "token limit (tuned)"  # _update's tuned pane ran out of tokens


def test_a_preference_with_a_note_is_kept_and_can_be_cleared(run_id: int) -> None:
    saved = comparisons.record(_update(run_id))
    comparisons.mark_preference(saved.id, "tuned", "  shorter, same conclusion ")
    row = comparisons.get_comparison(saved.id)
    assert (row.preferred, row.note) == ("tuned", "shorter, same conclusion")
    comparisons.mark_preference(saved.id, None, "")
    row = comparisons.get_comparison(saved.id)
    assert (row.preferred, row.note) == (None, None)


def test_bad_preferences_are_refused_with_the_field_named(run_id: int) -> None:
    saved = comparisons.record(_update(run_id))
    with pytest.raises(comparisons.ComparisonError, match="preferred: 'both' is not one of base, tuned, tie"):
        comparisons.mark_preference(saved.id, "both")
    with pytest.raises(comparisons.ComparisonError, match="comparison: 12345 does not exist"):
        comparisons.mark_preference(12345, "base")
    with pytest.raises(comparisons.ComparisonError, match=r"Run a comparison \(or pick a saved one\) before marking"):
        comparisons.mark_preference(None, "base")


def test_a_comparison_with_nothing_generated_is_not_stored(run_id: int) -> None:
    empty = CompareUpdate("done", "Stopped before it started.", run_id, "Q?", GenerationSettings(), stopped=True)
    with pytest.raises(comparisons.ComparisonError, match="nothing was generated"):
        comparisons.record(empty)


def test_csv_export_escapes_cells_a_spreadsheet_would_run_as_formulas(run_id: int) -> None:
    hostile = '=HYPERLINK("http://evil.example","click")'
    saved = comparisons.record(_update(run_id, question=hostile, base_text="-2+3\n</think>\n@SUM(A1)",
                                       tuned_text="+cmd|' /C calc'!A0"))
    comparisons.mark_preference(saved.id, "base", "-1 for tuned: it invents a drug")
    path = comparisons.export_csv(run_id)
    assert path.parent == comparisons.get_settings().exports_dir
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    row = rows[0]
    assert row["question"] == "'" + hostile
    assert row["base_reasoning"] == "'-2+3" and row["base_answer"] == "'@SUM(A1)"
    assert row["tuned_reasoning"] == "'+cmd|' /C calc'!A0" and row["note"] == "'-1 for tuned: it invents a drug"
    assert row["base_tokens"] == "12" and row["base_seconds"] == "2.5"
    assert json.loads(row["settings"])["max_new_tokens"] == 64
    for value in row.values():
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_jsonl_export_keeps_the_exact_text_oldest_first(run_id: int) -> None:
    comparisons.record(_update(run_id, question="=1+1"))
    comparisons.record(_update(run_id, question="second"))
    path = comparisons.export_jsonl(run_id)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["question"] for r in records] == ["=1+1", "second"]
    assert list(records[0]) == list(comparisons.EXPORT_FIELDS)
    assert records[0]["settings"]["greedy"] is True and records[0]["base_state"] == "closed"


def test_two_exports_in_the_same_second_keep_both_files(run_id: int) -> None:
    comparisons.record(_update(run_id))
    first, second = comparisons.export_csv(run_id), comparisons.export_csv(run_id)
    assert first != second and first.exists() and second.exists()


def test_exporting_with_no_comparisons_gives_a_header_only_file(home: Path) -> None:
    path: Any = comparisons.export_csv()
    assert path.read_text(encoding="utf-8-sig").splitlines() == [",".join(comparisons.EXPORT_FIELDS)]


@pytest.mark.parametrize("text, state", [("weighing\n</think>\nA", "closed"), ("unfinished thought", "unclosed")])
def test_a_saved_comparison_reopens_with_the_same_reasoning_answer_split_and_timings(run_id: int, text: str,
                                                                                    state: str) -> None:
    saved = comparisons.record(_update(run_id, base_text=text, tuned_text=text))
    for side in ("base", "tuned"):
        pane = comparisons.stored_pane(comparisons.get_comparison(saved.id), side)
        original = _pane("x", text, 12).completion
        assert pane.completion.state == state
        assert (pane.completion.reasoning, pane.completion.answer) == (original.reasoning, original.answer)
        assert pane.seconds == 2.5 and pane.first_token_s == 0.2
    assert comparisons.stored_pane(saved, "tuned").finish_reason == "length"


def test_a_saved_answer_without_any_reasoning_reopens_as_answer_only(run_id: int) -> None:
    update = _update(run_id)
    update.base.prompt_opened_think = False
    update.base.text = "Just the answer."
    pane = comparisons.stored_pane(comparisons.record(update), "base")
    completion = pane.completion
    assert (completion.state, completion.reasoning, completion.answer) == ("none", "", "Just the answer.")
