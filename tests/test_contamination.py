"""A user evaluating on a benchmark sees which of its questions the run trained on: a question sharing 64
characters or 13 words with a training row is flagged with that row; a near miss is not."""

from __future__ import annotations

import json
import random
from pathlib import Path

from medcot_ui.evaluate.contamination import CHAR_RULE, WORD_RULE, check_contamination, normalise

TRAINING = [
    "A 45-year-old woman presents with fatigue, weight gain and cold intolerance. Her TSH is raised and free T4 "
    "is low. What is the most likely diagnosis? Let me think about the thyroid axis first.",
    "Peaked T waves on the ECG point to hyperkalaemia; calcium gluconate stabilises the myocardium.",
]


def test_a_question_copied_from_a_training_row_is_flagged_with_that_row_even_with_other_case_and_spacing() -> None:
    copied = ("Which test next? a 45-year-old WOMAN presents with fatigue,   weight gain and\ncold intolerance. "
              "Her TSH is raised")
    report = check_contamination(["What causes peaked T waves?", copied], TRAINING)
    assert report.flagged == [1]
    (overlap,) = report.overlaps
    assert overlap.training_row == 0 and overlap.rule == CHAR_RULE
    assert overlap.shared == normalise("a 45-year-old woman presents with fatigue, weight gain and cold intolerance. "
                                       "her tsh is raised")
    assert report.summary() == ("1 of 2 questions share text with the 2 training rows (64 characters or 13 "
                                "consecutive words in common)")


def test_sixty_three_shared_characters_are_a_near_miss_and_sixty_four_are_not() -> None:
    rng = random.Random(1)
    body = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(200))
    row = "0123456789 " + body + " 9876543210"
    for length, flagged in ((63, []), (64, [0])):
        question = "Q: " + body[50:50 + length] + " ?"  # the characters around it differ from the row's
        assert check_contamination([question], [row]).flagged == flagged, length


def test_thirteen_shared_words_are_flagged_even_when_punctuation_differs_and_twelve_are_not() -> None:
    words = "the patient had a fever of three days with rigors and a new murmur at the apex".split()
    row = "History: " + ", ".join(words) + "."
    for count, flagged in ((12, []), (13, [0])):
        question = "Asked: " + " ".join(words[:count]) + " - which organism?"
        report = check_contamination([question], [row])
        assert report.flagged == flagged, count
        if flagged:
            assert report.overlaps[0].rule == WORD_RULE and report.overlaps[0].shared == " ".join(words[:13])


def test_the_longest_shared_run_of_a_question_is_the_one_reported() -> None:
    question = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
                "upsilon phi chi psi omega")
    short_row = " ".join(question.split()[:14]) + " end"
    long_row = "start " + question
    report = check_contamination([question], [short_row, long_row])
    assert report.overlaps[0].training_row == 1 and report.overlaps[0].shared == question


def test_no_training_rows_or_no_questions_flag_nothing() -> None:
    assert check_contamination(["anything at all"], []).flagged == []
    assert check_contamination([], TRAINING).overlaps == []


def test_an_evaluation_records_its_check_logs_the_flagged_question_and_can_leave_it_out(demo_run: int,
                                                                                         tmp_path: Path) -> None:
    from medcot_ui.compare.comparable import held_out
    from medcot_ui.evaluate.create import EvalRequest, create_evaluation
    from medcot_ui.evaluate.results import summary_lines
    from medcot_ui.store import run_events

    trained = held_out(demo_run).trained[0].question
    questions = tmp_path / "questions.jsonl"
    rows = [{"Question": f"Asked again: {trained}", "Complex_CoT": "-", "Response": "-"},
            {"Question": "A new question about sodium that no training row holds, asked in plain words here.",
             "Complex_CoT": "-", "Response": "-"}]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))

    kept = create_evaluation(EvalRequest(run_id=demo_run, source="file", file_path=str(questions), n=2))
    assert kept.n_items == 2
    assert ("Contamination check: 1 of the 2 evaluated questions share text with the 112 training rows (64 "
            "characters or 13 consecutive words in common); their scores may reflect memorised questions."
            ) in summary_lines(kept)
    log = [e.message for e in run_events(kept.job_id)]
    assert "contamination check: 1 of 2 questions share text with the 112 training rows" in " ".join(log)
    assert any(m.startswith("question 1 of the source shares 64 characters with training row 1:") for m in log)

    left = create_evaluation(EvalRequest(run_id=demo_run, source="file", file_path=str(questions), n=2,
                                         exclude_contaminated=True))
    assert left.n_items == 1 and "1 questions that share text with the training rows left out" in left.source
    assert ("Contamination check: 1 of 2 questions shared text with the 112 training rows (64 characters or 13 "
            "consecutive words in common) and were left out; the 1 evaluated share none.") in summary_lines(left)


def test_the_cli_check_lists_the_flagged_questions_and_queues_nothing(demo_run: int, tmp_path: Path) -> None:
    from conftest import cli
    from medcot_ui.evaluate.records import list_evaluations
    from medcot_ui.compare.comparable import held_out

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"Question": held_out(demo_run).trained[3].question, "Complex_CoT": "-",
                                     "Response": "-"}) + "\n")
    out = cli("eval", "held-out", str(demo_run), "--file", str(questions), "--check-only").stdout
    assert "1 of 1 questions share text with the 112 training rows" in out
    assert "question 1 of the source shares 64 characters with training row 4:" in out
    assert list_evaluations(demo_run) == []
