"""Which finished evaluations a run's model card reports, and the card's section on them: all of them unless someone leaves one out (a throwaway
try, a wrong setting). The choice is recorded as an event of the evaluation's job (no column holds it): the latest
"left out" / "put back" event decides, so the choice survives restarts and its history stays readable."""

from __future__ import annotations

from sqlmodel import select

from medcot_ui.evaluate.benchmark_table import benchmark_markdown, benchmark_rows
from medcot_ui.evaluate.records import list_evaluations
from medcot_ui.evaluate.results import RESEARCH_ONLY, headline, summary_lines
from medcot_ui.evaluate.tables import Evaluation
from medcot_ui.store import RunEvent, RunStatus, add_event, get_run, read_session

LEFT_OUT, PUT_BACK = "left out of the model card", "put back in the model card"


def finished_evaluations(run_id: int) -> list[Evaluation]:
    """The run's evaluations whose job succeeded, oldest first (what a card can report)."""
    return [e for e in reversed(list_evaluations(run_id))
            if (job := get_run(e.job_id)) is not None and job.status == RunStatus.succeeded]


def in_card(evaluation: Evaluation) -> bool:
    with read_session() as s:
        latest = s.exec(select(RunEvent.message).where(RunEvent.run_id == evaluation.job_id,
                                                       RunEvent.message.in_((LEFT_OUT, PUT_BACK)))
                        .order_by(RunEvent.id.desc())).first()
    return latest != LEFT_OUT


def card_choices(run_id: int) -> tuple[list[tuple[str, int]], list[int]]:
    """(every finished evaluation as (label, id), the ids the card reports now) for a checklist."""
    finished = finished_evaluations(run_id)
    return ([(f"evaluation {e.id}: {headline(e)}", e.id) for e in finished],
            [e.id for e in finished if in_card(e)])


def set_in_card(run_id: int, wanted: list[int]) -> None:
    """Report exactly the ``wanted`` evaluations of the run (others are left out); records only changes."""
    for evaluation in finished_evaluations(run_id):
        if (evaluation.id in wanted) != in_card(evaluation):
            add_event(evaluation.job_id, PUT_BACK if evaluation.id in wanted else LEFT_OUT)


def card_section(run_id: int) -> str:
    """The model card's account of the run's finished evaluations (those not left out of it): what was measured,
    on what, N, the intervals, who rated; research use only."""
    every = finished_evaluations(run_id)
    finished = [e for e in every if in_card(e)]
    if not finished:
        left_out = f" ({len(every)} left out of this card)" if every else ""
        return f"No evaluation of this run was recorded in MedCoT Studio{left_out}."
    parts = [f"{len(finished)} evaluation{'s' * (len(finished) > 1)} run in MedCoT Studio (95% intervals are Wilson "
             "score intervals; the paired test is an exact McNemar test; blind ratings saw the two answers as A and B "
             "in a random order recorded per question)."]
    if benchmark_rows(finished):
        parts.append(f"### Multiple-choice benchmarks\n\n{benchmark_markdown(finished)}")
    for evaluation in finished:
        lines = "\n".join(f"- {line}" for line in summary_lines(evaluation))
        parts.append(f"### {headline(evaluation)}\n\n{lines}")
    parts.append(f"*{RESEARCH_ONLY}*")
    return "\n\n".join(parts)
