"""Column mapping: common spellings are recognised, chat rows are unpacked, and the user's mapping is what the
run config carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcot_ui.data.columns import detect_mapping, split_conversation
from medcot_ui.training.config import DataSettings
from medcot_ui.data.load import load, map_rows
from medcot_ui.errors import DataError
from medcot_ui.data.report import apply_detected_mapping


@pytest.mark.parametrize("columns,expected", [
    (["Question", "Complex_CoT", "Response"], ("Question", "Complex_CoT", "Response")),
    (["question", "cot", "answer"], ("question", "cot", "answer")),
    (["instruction", "reasoning", "output"], ("instruction", "reasoning", "output")),
    (["id", "input", "thinking", "response"], ("input", "thinking", "response")),
    (["prompt", "Chain-of-Thought", "Answer"], ("prompt", "Chain-of-Thought", "Answer")),
    (["QUESTION", "complex_cot", "RESPONSE"], ("QUESTION", "complex_cot", "RESPONSE")),
])
def test_common_spellings_of_question_reasoning_and_answer_are_recognised(columns: list[str],
                                                                          expected: tuple[str, str, str]) -> None:
    mapping = detect_mapping(columns)
    assert (mapping.question, mapping.reasoning, mapping.answer) == expected
    assert mapping.missing == []


def test_a_column_the_data_lacks_is_reported_as_missing_not_guessed() -> None:
    mapping = detect_mapping(["question", "answer", "source"])
    assert mapping.reasoning is None and mapping.missing == ["reasoning"]


def test_instruction_and_input_together_map_instruction_as_the_question() -> None:
    mapping = detect_mapping(["instruction", "input", "output", "rationale"])
    assert (mapping.question, mapping.reasoning, mapping.answer) == ("instruction", "rationale", "output")


def test_the_recognised_mapping_replaces_only_columns_the_data_lacks() -> None:
    data = DataSettings(source="demo", question_column="prompt")
    fixed, note = apply_detected_mapping(data, ["prompt", "question", "cot", "answer"])
    assert (fixed.question_column, fixed.reasoning_column, fixed.answer_column) == ("prompt", "cot", "answer")
    assert note == "Recognised columns: reasoning = 'cot', answer = 'answer'."


def _chat_file(path: Path, conversations: list[object], column: str = "messages") -> Path:
    path.write_text("\n".join(json.dumps({column: c, "id": i}) for i, c in enumerate(conversations)),
                    encoding="utf-8")
    return path


def test_messages_style_rows_with_think_tags_become_question_reasoning_and_answer(tmp_path: Path) -> None:
    path = _chat_file(tmp_path / "chat.jsonl", [[
        {"role": "system", "content": "You are a careful physician."},
        {"role": "user", "content": "Which artery is occluded?"},
        {"role": "assistant", "content": "<think>\nII, III, aVF are inferior.\n</think>\nThe right coronary artery."},
    ]])
    data = DataSettings(source="file", file_path=str(path), split="train")
    loaded = load(data)
    assert detect_mapping(loaded.columns) == detect_mapping(
        ["messages", "id", "messages.question", "messages.reasoning", "messages.answer"])
    data, _ = apply_detected_mapping(data, loaded.columns)
    assert data.question_column == "messages.question"
    [row] = map_rows(loaded.records, data)
    assert (row.question, row.reasoning, row.answer) == (
        "Which artery is occluded?", "II, III, aVF are inferior.", "The right coronary artery.")


def test_sharegpt_rows_and_a_separate_reasoning_field_are_unpacked() -> None:
    sharegpt = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A.", "reasoning_content": "Because."}]
    assert split_conversation(sharegpt) == ("Q?", "Because.", "A.")
    assert split_conversation([{"role": "user", "content": [{"type": "text", "text": "Q?"}]},
                               {"role": "assistant", "content": "<think>R</think>A"}]) == ("Q?", "R", "A")


def test_a_chat_row_without_reasoning_is_an_error_naming_the_row_and_derived_column(tmp_path: Path) -> None:
    path = _chat_file(tmp_path / "chat.jsonl", [
        [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>R1</think>A1"}],
        [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2 with no reasoning"}],
    ], column="conversations")
    data = DataSettings(source="file", file_path=str(path), split="train",
                        question_column="conversations.question", reasoning_column="conversations.reasoning",
                        answer_column="conversations.answer")
    with pytest.raises(DataError, match=r"row 2, column 'conversations\.reasoning': expected text, got nothing"):
        map_rows(load(data).records, data)
