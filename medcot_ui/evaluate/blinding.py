"""Keeping held-out A/B rating blind: which model wrote which answer (every item view, the items table, the CSV /
JSONL exports with ``a_side``) stays hidden from a rater until that rater has rated every item, or until someone
who may run evaluations ends rating for everyone.

Ending rating is recorded as an event of the evaluation's job (no column holds it): events are kept with the
job's row and read by one query, so it survives restarts and shows in the job's history.
"""

from __future__ import annotations

from sqlmodel import func, select

from medcot_ui.evaluate.records import get_evaluation
from medcot_ui.evaluate.tables import HELD_OUT, EvalItem, EvalRating, Evaluation
from medcot_ui.store import RunEvent, add_event, read_session

RATING_ENDED = "rating ended by "


class StillBlind(ValueError):
    """Refused: the caller would learn which model wrote which before finishing their own ratings."""


def blind_reason(evaluation_id: int, rater: str | None) -> str | None:
    """Why ``rater`` may not see the sides of this evaluation yet, or None when they may."""
    evaluation = get_evaluation(evaluation_id)
    if evaluation is None or evaluation.kind != HELD_OUT or rating_ended(evaluation):
        return None
    rater = (rater or "").strip()
    with read_session() as s:
        total = s.exec(select(func.count()).select_from(EvalItem)
                       .where(EvalItem.evaluation_id == evaluation_id)).one()
        rated = s.exec(select(func.count(func.distinct(EvalRating.item_id)))
                       .where(EvalRating.evaluation_id == evaluation_id, EvalRating.rater == rater)).one()
    if total and rated >= total:
        return None
    who = f"{rater} has" if rater else "you have"
    return (f"Evaluation {evaluation_id} is still being rated blind: which model wrote which answer stays hidden "
            f"until {who} rated every item ({rated} of {total} rated) or someone who may run evaluations ends "
            "rating.")


def require_unblinded(evaluation_id: int, rater: str | None) -> None:
    """Raise StillBlind when :func:`blind_reason` gives one."""
    if (reason := blind_reason(evaluation_id, rater)) is not None:
        raise StillBlind(reason)


def end_rating(evaluation_id: int, by: str) -> str:
    """Open the sides and exports to every rater (recorded once, with who ended it); returns what to show."""
    evaluation = get_evaluation(evaluation_id)
    if evaluation is None:
        raise StillBlind(f"evaluation {evaluation_id} does not exist")
    if evaluation.kind != HELD_OUT:
        return f"Evaluation {evaluation_id} is multiple choice: nothing is rated blind."
    if not rating_ended(evaluation):
        add_event(evaluation.job_id, f"{RATING_ENDED}{(by or '').strip() or 'the owner'}: which model wrote "
                                     f"which is shown to every rater of evaluation {evaluation_id}")
    return f"Rating of evaluation {evaluation_id} has ended: every rater now sees which model wrote which."


def rating_ended(evaluation: Evaluation) -> bool:
    with read_session() as s:
        return s.exec(select(RunEvent.id).where(RunEvent.run_id == evaluation.job_id,
                                                RunEvent.message.startswith(RATING_ENDED))).first() is not None
