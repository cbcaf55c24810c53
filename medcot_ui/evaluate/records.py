"""Reading and writing evaluation rows: the job's pending questions, stored answers, progress, ratings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session, func, select

from medcot_ui.evaluate.choices import choice_of
from medcot_ui.evaluate.tables import SIDES, EvalItem, EvalRating, Evaluation
from medcot_ui.store import Run, read_session
from medcot_ui.units import duration

if TYPE_CHECKING:  # generate imports torch: the queue (and so every CLI command) imports this module
    from medcot_ui.evaluate.generate import Generated


def get_evaluation(evaluation_id: int) -> Evaluation | None:
    with read_session() as s:
        return s.get(Evaluation, evaluation_id)


def evaluation_for_job(job_id: int) -> Evaluation | None:
    with read_session() as s:
        return s.exec(select(Evaluation).where(Evaluation.job_id == job_id)).first()


def list_evaluations(run_id: int | None = None, limit: int = 200) -> list[Evaluation]:
    """Newest first, of one tuned run or of all; evaluations of deleted runs are left out."""
    with read_session() as s:
        q = select(Evaluation).join(Run, Run.id == Evaluation.run_id).where(Run.deleted_at.is_(None))
        if run_id is not None:
            q = q.where(Evaluation.run_id == run_id)
        return list(s.exec(q.order_by(Evaluation.id.desc()).limit(limit)))


def items_of(evaluation_id: int) -> list[EvalItem]:
    with read_session() as s:
        return list(s.exec(select(EvalItem).where(EvalItem.evaluation_id == evaluation_id)
                           .order_by(EvalItem.position)))


def pending_items(evaluation_id: int, limit: int) -> list[EvalItem]:
    """The first ``limit`` questions still missing an answer on either side."""
    with read_session() as s:
        missing = (EvalItem.base_text.is_(None)) | (EvalItem.tuned_text.is_(None))
        return list(s.exec(select(EvalItem).where(EvalItem.evaluation_id == evaluation_id, missing)
                           .order_by(EvalItem.position).limit(limit)))


def store_answers(session: Session, items: list[EvalItem], side: str, answers: list[Generated]) -> int:
    """Store one side's answers for ``items`` in ``session`` (never overwriting a stored one); returns how many."""
    if side not in SIDES:
        raise ValueError(f"side: '{side}' is not one of {', '.join(SIDES)}")
    stored = 0
    for item, answer in zip(items, answers, strict=True):
        row = session.get(EvalItem, item.id)
        if row.generated(side):
            continue
        values = {"text": answer.text, "reasoning": answer.completion.reasoning, "answer": answer.completion.answer,
                  "state": answer.completion.state, "tokens": answer.tokens, "finish": answer.finish,
                  "seconds": answer.seconds,
                  "choice": choice_of(answer.completion, row.options) if row.options else None}
        for name, value in values.items():
            setattr(row, f"{side}_{name}", value)
        stored += 1
    session.flush()
    return stored


def answered_count(session: Session, evaluation_id: int) -> int:
    """Stored answers of both sides (each question counts twice)."""
    rows = session.exec(select(EvalItem.base_text.is_not(None), EvalItem.tuned_text.is_not(None))
                        .where(EvalItem.evaluation_id == evaluation_id)).all()
    return sum(int(bool(a)) + int(bool(b)) for a, b in rows)


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    eta_s: float | None  # from the time the stored answers took
    tokens_per_s: float | None  # generated tokens over the time they took

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def line(self, running: bool) -> str:
        """``123/2546 answers (5%), 4,210 tokens/s, about 4 min left`` (speed and ETA while it runs)."""
        text = f"{self.done}/{self.total} answers ({self.fraction:.0%})"
        if running and self.tokens_per_s:
            text += f", {self.tokens_per_s:,.0f} tokens/s"
        if running and self.eta_s:
            text += f", about {duration(self.eta_s)} left"
        return text


def progress(evaluation_id: int) -> Progress:
    """Counted in SQL: answers stored, their seconds (each answer's share of the wall time) and tokens."""
    sides = [(getattr(EvalItem, f"{side}_seconds"), getattr(EvalItem, f"{side}_tokens")) for side in SIDES]
    with read_session() as s:
        row = s.exec(select(func.count(EvalItem.id), *(func.count(sec) for sec, _ in sides),
                            *(func.coalesce(func.sum(sec), 0.0) for sec, _ in sides),
                            *(func.coalesce(func.sum(tok), 0) for _, tok in sides))
                     .where(EvalItem.evaluation_id == evaluation_id)).one()
    items, done = row[0], row[1] + row[2]
    seconds, tokens = float(row[3] + row[4]), int(row[5] + row[6])
    total = 2 * items
    eta = (total - done) * seconds / done if done else None
    return Progress(done, total, eta, tokens / seconds if seconds else None)


def ratings_of(evaluation_id: int) -> list[EvalRating]:
    with read_session() as s:
        return list(s.exec(select(EvalRating).where(EvalRating.evaluation_id == evaluation_id)
                           .order_by(EvalRating.id)))
