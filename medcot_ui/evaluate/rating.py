"""Blind rating: a rater sees two answers as A and B (the order recorded per item), picks one, then sees which
model wrote which. The model names never reach the blind view."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from medcot_ui.errors import MedcotError
from medcot_ui.evaluate.tables import VERDICTS, EvalItem, EvalRating
from medcot_ui.store import read_session, write_session

VERDICT_LABELS = {"A": "A is better", "B": "B is better", "tie": "Tie", "neither": "Both unacceptable"}


class RatingError(MedcotError, ValueError):
    """A rating that cannot be recorded; the message names the field."""


@dataclass(frozen=True)
class Shown:
    """One answer as the rater sees it: no model name."""

    reasoning: str
    answer: str


@dataclass(frozen=True)
class BlindItem:
    item_id: int
    position: int
    question: str
    reference_reasoning: str
    reference_answer: str
    a: Shown
    b: Shown


def _shown(item: EvalItem, side: str) -> Shown:
    return Shown(getattr(item, f"{side}_reasoning") or "", getattr(item, f"{side}_answer") or "")


def b_side(item: EvalItem) -> str:
    return "tuned" if item.a_side == "base" else "base"


def blind(item: EvalItem) -> BlindItem:
    return BlindItem(item.id, item.position, item.question, item.reference_reasoning or "",
                     item.reference_answer or "", _shown(item, item.a_side), _shown(item, b_side(item)))


def next_unrated(evaluation_id: int, rater: str) -> EvalItem | None:
    """The first fully answered question ``rater`` has not rated yet."""
    with read_session() as s:
        rated = select(EvalRating.item_id).where(EvalRating.rater == rater.strip())
        return s.exec(select(EvalItem).where(EvalItem.evaluation_id == evaluation_id,
                                             EvalItem.base_text.is_not(None), EvalItem.tuned_text.is_not(None),
                                             EvalItem.id.not_in(rated)).order_by(EvalItem.position)).first()


def unblind(verdict: str, item: EvalItem) -> str:
    """A verdict about A/B as a verdict about the models: base / tuned / tie / neither."""
    return {"A": item.a_side, "B": b_side(item)}.get(verdict, verdict)


def rate(item_id: int, rater: str, verdict: str, note: str | None = None) -> EvalRating:
    """Record (or replace) ``rater``'s verdict on one item."""
    rater = (rater or "").strip()
    if not rater:
        raise RatingError("rater: type your name (or sign in) before rating")
    if verdict not in VERDICTS:
        raise RatingError(f"verdict: '{verdict}' is not one of {', '.join(VERDICTS)}")
    with write_session() as s:
        item = s.get(EvalItem, item_id)
        if item is None or not (item.generated("base") and item.generated("tuned")):
            raise RatingError(f"item {item_id}: no such answered question to rate")
        row = s.exec(select(EvalRating).where(EvalRating.item_id == item_id, EvalRating.rater == rater)).first()
        row = row or EvalRating(evaluation_id=item.evaluation_id, item_id=item_id, rater=rater, verdict=verdict,
                                preferred="")
        row.verdict, row.preferred, row.note = verdict, unblind(verdict, item), (note or "").strip() or None
        s.add(row)
    return row


def reveal(item: EvalItem, base_label: str, tuned_label: str) -> str:
    """Which model wrote A and which B (shown only after the rating is stored)."""
    names = {"base": base_label, "tuned": tuned_label}
    return f"A was the {names[item.a_side]}; B was the {names[b_side(item)]}."
