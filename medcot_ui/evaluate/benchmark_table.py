"""The table reviewers expect: a run's multiple-choice evaluations, one row per benchmark and scoring method, with
base and tuned side by side (n, accuracy and its 95% Wilson interval, no-answer counts, exact McNemar p, and how
many evaluated questions the contamination check flagged). The Evaluate tab, ``medcot eval table`` and the model
card show the same rows."""

from __future__ import annotations

from medcot_ui.evaluate.loglik import METHOD as LOGLIK
from medcot_ui.evaluate.records import items_of
from medcot_ui.evaluate.results import contamination_found, summarise_choices
from medcot_ui.evaluate.stats import Proportion
from medcot_ui.evaluate.tables import CHOICE, Evaluation

HEADERS = ["Benchmark", "Evaluation", "Scoring", "n", "Base", "Tuned", "Tuned - base", "McNemar p",
           "No answer (base / tuned)", "Contaminated"]


def _accuracy(p: Proportion) -> str:
    return f"{p.value:.1%} [{p.low:.1%}, {p.high:.1%}]"


def _contaminated(evaluation: Evaluation) -> str:
    if (found := contamination_found(evaluation)) is None:
        return "not checked"
    return f"0 ({found['left_out']} left out)" if found["left_out"] else str(found["evaluated"])


def benchmark_rows(evaluations: list[Evaluation]) -> list[list[str]]:
    """One row per multiple-choice evaluation with answers from both sides, ordered by benchmark then scoring."""
    rows = []
    for evaluation in evaluations:
        if evaluation.kind != CHOICE:
            continue
        summary = summarise_choices(items_of(evaluation.id))
        if not summary.scored:
            continue
        loglik = evaluation.method == LOGLIK
        benchmark = evaluation.source + (f" (against run {evaluation.base_run_id})"
                                         if evaluation.base_run_id is not None else "")
        rows.append([benchmark, str(evaluation.id), "log-likelihood (acc)" if loglik else "generative",
                     str(summary.scored), _accuracy(summary.base), _accuracy(summary.tuned),
                     f"{summary.difference:+.1%}", f"{summary.p_value:.3g}",
                     "-" if loglik else f"{summary.base_unparsed.k} / {summary.tuned_unparsed.k}",
                     _contaminated(evaluation)])
    return sorted(rows, key=lambda row: (row[0], row[2], int(row[1])))


def benchmark_markdown(evaluations: list[Evaluation]) -> str:
    """The rows as a Markdown table, or a sentence saying what would fill it."""
    rows = benchmark_rows(evaluations)
    if not rows:
        return ("No multiple-choice evaluation with answers from both models yet: queue one (a benchmark by name, "
                "generative or log-likelihood) and its scores appear here.")
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + ("\n\nAccuracy with its 95% Wilson interval; an answer with no letter found counts as "
                               "wrong; McNemar: exact, on the paired outcomes; Contaminated: evaluated questions "
                               "sharing 64 characters or 13 words with the training rows.")
