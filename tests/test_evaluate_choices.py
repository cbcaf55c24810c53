"""Multiple-choice data: the chosen option is read from the text after </think> and never guessed; bad files are
refused with the row and column named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcot_ui.evaluate.choice_data import (DEMO_CHOICE_FILE, LETTERED, ChoiceDataError, ChoiceMapping, choice_items,
                                            detect_mapping, read_records)
from medcot_ui.evaluate.choices import choice_of, parse_choice
from medcot_ui.training.prompts import split_completion

OPTIONS = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Alteplase"}


@pytest.mark.parametrize("answer, letter", [
    ("The answer is C.", "C"), ("Answer: (B)", "B"), ("**Answer: D**", "D"), ("C", "C"), ("(D)", "D"),
    ("B. Heparin, because it acts at once", "B"), ("Warfarin is the drug to use.", "C"),
    ("The answer is a viral infection", None), ("Aspirin or heparin", None), ("I am not sure", None), ("", None),
    ("The answer is E", None)])
def test_the_choice_is_a_stated_letter_a_bare_letter_or_one_options_text(answer: str, letter: str | None) -> None:
    assert parse_choice(answer, OPTIONS) == letter


def test_only_the_text_after_a_closed_think_counts() -> None:
    assert choice_of(split_completion("The drug is not A... </think>\nThe answer is C."), OPTIONS) == "C"
    assert choice_of(split_completion("I think the answer is C but let me"), OPTIONS) is None  # never closed


def test_the_demo_file_has_at_least_20_valid_items_in_the_medqa_layout() -> None:
    records, where = read_records("demo")
    assert where == "the demo questions (medical_choice_demo.jsonl)", "a local file has no '(train)' split"
    mapping = detect_mapping(list(records[0]))
    assert mapping == ChoiceMapping("question", "options", "answer_idx")
    items = choice_items(records, mapping)
    assert len(items) >= 20 and all(item.answer in item.options for item in items)
    assert DEMO_CHOICE_FILE.exists()


def write(tmp_path: Path, rows: list[dict]) -> str:
    path = tmp_path / "mcq.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_lists_letter_mappings_and_lettered_columns_all_become_lettered_options(tmp_path: Path) -> None:
    listed = choice_items([{"question": "q?", "options": ["x", "y"], "answer": "y"}], ChoiceMapping())
    assert listed[0].options == {"A": "x", "B": "y"} and listed[0].answer == "B"
    records, _ = read_records("file", write(tmp_path, [{"stem": "q?", "A": "x", "B": "y", "C": "z", "key": "c"}]))
    items = choice_items(records, ChoiceMapping("stem", LETTERED, "key"))
    assert items[0].options == {"A": "x", "B": "y", "C": "z"} and items[0].answer == "C"


def test_a_file_without_an_answer_column_is_refused_naming_the_columns(tmp_path: Path) -> None:
    records, _ = read_records("file", write(tmp_path, [{"question": "q?", "options": ["x", "y"]}]))
    with pytest.raises(ChoiceDataError, match=r"no answer column 'answer' \(columns: question, options\)"):
        choice_items(records, detect_mapping(list(records[0])))


def test_an_answer_key_that_is_not_an_option_and_options_that_are_not_a_list_name_their_rows() -> None:
    rows = [{"question": "q1", "options": ["x", "y"], "answer": "A"},
            {"question": "q2", "options": ["x", "y"], "answer": "E"},
            {"question": "q3", "options": "x or y", "answer": "A"}]
    with pytest.raises(ChoiceDataError) as err:
        choice_items(rows, ChoiceMapping())
    assert err.value.problems == [
        "row 2, column 'answer': the answer key 'E' is not one of the options (A, B, by letter or by text)",
        "row 3, column 'options': expected a list of options (or a mapping from letters to options), got text that "
        "is not 'A. ... B. ...' with the letters in order"]
