"""A reviewer reads one table per run: each multiple-choice benchmark and scoring method on a row, base and tuned
side by side with n, accuracy and its 95% interval, the McNemar p, answers with no letter found and the
contamination count; the Evaluate tab, ``medcot eval table`` and the model card show the same rows."""

from __future__ import annotations


import pytest

from medcot_ui.store import Run, write_session


def _answered(evaluation_id: int, base: str, tuned: str) -> None:
    """Store both sides' letters as the worker would ('?' = no letter found), one character per question."""
    from sqlmodel import select

    from medcot_ui.evaluate.tables import EvalItem

    with write_session() as s:
        items = s.exec(select(EvalItem).where(EvalItem.evaluation_id == evaluation_id)
                       .order_by(EvalItem.position)).all()
        assert len(items) == len(base) == len(tuned)
        for item, b, t in zip(items, base, tuned):
            item.base_text, item.tuned_text = f"</think> {b}", f"</think> {t}"
            item.base_choice, item.tuned_choice = (None if b == "?" else b), (None if t == "?" else t)


def _finished(*evaluations: object) -> None:
    with write_session() as s:
        for evaluation in evaluations:
            s.get(Run, evaluation.job_id).status = "succeeded"


def test_two_scorings_of_the_demo_benchmark_sit_side_by_side_in_the_tab_the_cli_and_the_card(
        demo_run: int, capsys: pytest.CaptureFixture[str]) -> None:
    from medcot import main as cli
    from medcot_ui.evaluate.benchmark_table import benchmark_rows
    from medcot_ui.evaluate.create import EvalRequest, create_evaluation
    from medcot_ui.evaluate.in_card import finished_evaluations
    from medcot_ui.evaluate.records import items_of
    from medcot_ui.publish import card as model_card

    generative = create_evaluation(EvalRequest(kind="choice", run_id=demo_run, n=10, source="demo"))
    loglik = create_evaluation(EvalRequest(kind="choice", run_id=demo_run, n=10, source="demo", method="loglik"))
    unfinished = create_evaluation(EvalRequest(kind="choice", run_id=demo_run, n=4, source="demo"))
    correct = "".join(item.correct for item in items_of(generative.id))
    # generative: base right on 4 of 10 (3 with no letter), tuned right on 8 of 10 (1 with no letter)
    wrong = {c: next(x for x in "ABCD" if x != c) for c in "ABCD"}
    _answered(generative.id, correct[:4] + "???" + "".join(wrong[c] for c in correct[7:]),
              correct[:8] + wrong[correct[8]] + "?")
    _answered(loglik.id, correct[:5] + "".join(wrong[c] for c in correct[5:]), correct[:6] +
              "".join(wrong[c] for c in correct[6:]))
    _finished(generative, loglik)

    rows = benchmark_rows(finished_evaluations(demo_run))
    assert [row[1] for row in rows] == [str(generative.id), str(loglik.id)], "finished ones only"
    gen, ll = rows
    assert gen[2] == "generative" and ll[2] == "log-likelihood (acc)"
    assert gen[3] == ll[3] == "10"
    assert gen[4].startswith("40.0% [") and gen[5].startswith("80.0% [") and gen[6] == "+40.0%"
    assert gen[8] == "3 / 1" and ll[8] == "-"
    assert ll[4].startswith("50.0% [") and ll[5].startswith("60.0% [")
    assert gen[9] == "0", "the demo run's training rows share nothing with the demo questions"
    assert float(gen[7]) == pytest.approx(0.125)  # exact McNemar: 4 discordant pairs, all one way: 2 * 0.5**4
    assert str(unfinished.id) not in [row[1] for row in rows]

    assert cli(["eval", "table", str(demo_run)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| Benchmark | Evaluation | Scoring |") and printed.count("\n| ") == 2  # a row per evaluation

    card = str(model_card.build_card(model_card.gather(demo_run)))
    assert "### Multiple-choice benchmarks" in card
    assert "| generative | 10 | 40.0% [" in card and "| log-likelihood (acc) | 10 | 50.0% [" in card


def test_a_run_with_no_multiple_choice_results_says_what_would_fill_the_table(demo_run: int) -> None:
    from medcot_ui.evaluate.benchmark_table import benchmark_markdown
    from medcot_ui.evaluate.in_card import finished_evaluations

    assert benchmark_markdown(finished_evaluations(demo_run)).startswith("No multiple-choice evaluation")
