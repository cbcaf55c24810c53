"""A user brings MedQA, MedMCQA or PubMedQA in the layout the Hub publishes and evaluates on it with no mapping
step; rows that cannot be scored are refused with their row number, never scored against the wrong options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcot_ui.evaluate.choice_data import ChoiceDataError, benchmark_items, read_records


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def items_of_file(path: str) -> tuple[list, str]:
    records, _ = read_records("file", path)
    return benchmark_items(records)


def test_medqa_rows_with_four_and_five_options_and_extra_fields_read_as_they_are(tmp_path: Path) -> None:
    rows = [{"question": "Which artery?", "options": {"A": "LAD", "B": "RCA", "C": "LCx", "D": "LMCA"},
             "answer_idx": "B", "answer": "RCA", "meta_info": "step1", "metamap_phrases": ["artery"]},
            {"question": "Which drug?", "options": {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"},
             "answer_idx": "E", "answer": "e"}]
    items, layout = items_of_file(write_jsonl(tmp_path / "medqa.jsonl", rows))
    assert layout == "" and [i.answer for i in items] == ["B", "E"] and list(items[1].options) == list("ABCDE")


def test_medmcqa_reads_cop_as_a_zero_based_index_and_skips_and_counts_multi_answer_rows(tmp_path: Path) -> None:
    base = {"opa": "Vitamin A", "opb": "Vitamin B12", "opc": "Vitamin C", "opd": "Vitamin D", "subject_name": "x"}
    rows = [{**base, "question": "Scurvy is caused by lack of", "cop": 2, "choice_type": "single"},
            {**base, "question": "Pick the fat-soluble ones", "cop": 0, "choice_type": "multi"},
            {**base, "question": "Rickets is caused by lack of", "cop": 3, "choice_type": "single"},
            {**base, "question": "Night blindness", "cop": 0, "choice_type": "single"}]
    items, layout = items_of_file(write_jsonl(tmp_path / "medmcqa.jsonl", rows))
    assert layout == "MedMCQA layout; 1 multi-answer rows skipped"
    assert [(i.question, i.answer, i.options[i.answer]) for i in items] == [
        ("Scurvy is caused by lack of", "C", "Vitamin C"), ("Rickets is caused by lack of", "D", "Vitamin D"),
        ("Night blindness", "A", "Vitamin A")]


def test_pubmedqa_asks_yes_no_maybe_after_the_abstracts_passages(tmp_path: Path) -> None:
    rows = [{"pubid": 1, "question": "Does aspirin reduce stroke?", "final_decision": "yes", "long_answer": "...",
             "context": {"contexts": ["Background passage.", "Results passage."], "labels": ["B", "R"]}},
            {"pubid": 2, "question": "Is X linked to Y?", "final_decision": "maybe", "context": {"contexts": ["P."]}}]
    items, layout = items_of_file(write_jsonl(tmp_path / "pubmedqa.jsonl", rows))
    assert layout == "PubMedQA layout"
    assert items[0].question == "Background passage.\nResults passage.\n\nQuestion: Does aspirin reduce stroke?"
    assert items[0].options == {"A": "yes", "B": "no", "C": "maybe"}
    assert [i.answer for i in items] == ["A", "C"]


def test_options_written_as_one_text_are_split_at_their_letters_and_other_text_is_refused(tmp_path: Path) -> None:
    rows = [{"question": "Q1", "options": "A. Aspirin B. Heparin C) Warfarin D: Alteplase", "answer": "D"},
            {"question": "Q2", "options": "aspirin or heparin", "answer": "A"}]
    with pytest.raises(ChoiceDataError) as refused:
        items_of_file(write_jsonl(tmp_path / "text.jsonl", rows))
    assert refused.value.problems == ["row 2, column 'options': expected a list of options (or a mapping from "
                                      "letters to options), got text that is not 'A. ... B. ...' with the letters "
                                      "in order"]
    items, _ = items_of_file(write_jsonl(tmp_path / "one.jsonl", rows[:1]))
    assert items[0].options == {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Alteplase"}


def test_bad_benchmark_rows_are_refused_with_their_row_numbers(tmp_path: Path) -> None:
    base = {"opa": "one", "opb": "two", "opc": "three", "opd": "four", "choice_type": "single"}
    rows = [{**base, "question": "fine", "cop": 1},
            {**base, "question": "key out of range", "cop": 4},
            {**base, "question": "duplicate options", "cop": 0, "opc": "One"},
            {**base, "question": "empty option", "cop": 0, "opb": ""},
            {**base, "question": "missing option", "cop": 0, "opd": None}]
    with pytest.raises(ChoiceDataError) as refused:
        items_of_file(write_jsonl(tmp_path / "bad.jsonl", rows))
    assert refused.value.problems == [
        "row 2, column 'answer': the answer key 4 is not one of the options (A, B, C, D, by letter or by text)",
        "row 3, column 'options': options A and C are the same ('One')",
        "row 4, column 'options': option B is empty",
        "row 5, column 'options': option D is empty"]


def test_an_evaluation_on_a_medmcqa_file_says_which_layout_it_read(demo_run: int, tmp_path: Path) -> None:
    from medcot_ui.evaluate.create import EvalRequest, create_evaluation

    rows = [{"question": f"Question {i}", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": i % 4,
             "choice_type": "multi" if i == 0 else "single"} for i in range(5)]
    evaluation = create_evaluation(EvalRequest(kind="choice", run_id=demo_run, source="file", n=10,
                                               file_path=write_jsonl(tmp_path / "medmcqa_dev.jsonl", rows)))
    assert evaluation.n_items == 4 and "(MedMCQA layout; 1 multi-answer rows skipped)" in evaluation.source


def test_a_bad_row_after_a_skipped_multi_answer_row_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    base = {"opa": "one", "opb": "two", "opc": "three", "opd": "four"}
    rows = [{**base, "question": "multi", "cop": 0, "choice_type": "multi"},
            {**base, "question": "", "cop": 0, "choice_type": "single"}]
    with pytest.raises(ChoiceDataError) as refused:
        items_of_file(write_jsonl(tmp_path / "skip.jsonl", rows))
    assert refused.value.problems == ["row 2, column 'question': the question is missing or empty"]


def test_a_benchmark_asked_for_by_name_goes_to_its_hub_dataset_and_split_and_offline_says_so(demo_run: int) -> None:
    # The Hub cannot be reached here: everything up to the download is checked, and the refusal names the dataset.
    from conftest import cli
    from medcot_ui.evaluate.records import list_evaluations

    refused = cli("eval", "choice", str(demo_run), "--benchmark", "medmcqa", "--method", "loglik", check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Traceback" not in said
    assert "openlifescienceai/medmcqa" in said and "HF_HUB_OFFLINE" in said, said
    assert list_evaluations(demo_run) == []
