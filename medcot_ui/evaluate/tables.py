"""The evaluation tables: one row per evaluation, per question, and per rating (the job is a ``runs`` row).

Each answer is stored as soon as its batch is generated, so a crashed evaluation resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from typing import Optional

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

HELD_OUT, CHOICE = "held_out", "choice"
SIDES = ("base", "tuned")
VERDICTS = ("A", "B", "tie", "neither")  # what a rater picks: A better, B better, tie, both unacceptable


class Evaluation(SQLModel, table=True):
    __tablename__ = "evaluations"

    id: Optional[int] = Field(default=None, primary_key=True)
    # The queued job that generates the answers; deleting a run deletes its evaluations (as tuned run or as base).
    job_id: int = Field(foreign_key="runs.id", ondelete="CASCADE", index=True)
    kind: str = HELD_OUT  # held_out (A/B with references, rated blind) or choice (multiple-choice accuracy)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE", index=True)  # the tuned run
    # None: the run's base model
    base_run_id: Optional[int] = Field(default=None, foreign_key="runs.id", ondelete="CASCADE")
    source: str = ""  # where the questions came from, as a person reads it
    n_items: int = 0
    max_new_tokens: int = 1024
    greedy: bool = True
    temperature: float = 0.6
    batch_size: int = 8
    created_at: float = Field(default_factory=time.time)
    # The contamination check at creation (evaluate/create.py): questions checked, training rows, flagged, left
    # out, flagged among those evaluated. None for an evaluation created before the check existed.
    contamination_json: Optional[str] = Field(default=None, sa_column=Column(Text))
    method: str = "generate"  # multiple choice: generate, or loglik (each option's log-likelihood, no generation)


class EvalItem(SQLModel, table=True):
    """One question, its reference, and both models' answers (None until generated)."""

    __tablename__ = "eval_items"
    __table_args__ = (UniqueConstraint("evaluation_id", "position", name="uq_eval_items_position"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluations.id", ondelete="CASCADE")
    position: int  # 0-based order of the questions
    question: str = Field(sa_column=Column(Text, nullable=False))
    options_json: Optional[str] = Field(default=None, sa_column=Column(Text))  # choice: {"A": "...", ...}
    correct: Optional[str] = None  # choice: the correct letter
    reference_reasoning: Optional[str] = Field(default=None, sa_column=Column(Text))
    reference_answer: Optional[str] = Field(default=None, sa_column=Column(Text))
    a_side: str = "base"  # which model a rater sees as "A" (random per item, recorded)
    base_text: Optional[str] = Field(default=None, sa_column=Column(Text))  # the raw completion
    base_reasoning: Optional[str] = Field(default=None, sa_column=Column(Text))
    base_answer: Optional[str] = Field(default=None, sa_column=Column(Text))
    base_state: Optional[str] = None  # closed / unclosed / none (prompts.split_completion)
    base_tokens: Optional[int] = None
    base_finish: Optional[str] = None  # eos / length
    base_seconds: Optional[float] = None  # its share of the batch's generation time
    base_choice: Optional[str] = None  # choice: the parsed letter; None = unparsed
    tuned_text: Optional[str] = Field(default=None, sa_column=Column(Text))
    tuned_reasoning: Optional[str] = Field(default=None, sa_column=Column(Text))
    tuned_answer: Optional[str] = Field(default=None, sa_column=Column(Text))
    tuned_state: Optional[str] = None
    tuned_tokens: Optional[int] = None
    tuned_finish: Optional[str] = None
    tuned_seconds: Optional[float] = None
    tuned_choice: Optional[str] = None

    @property
    def options(self) -> dict[str, str]:
        return json.loads(self.options_json) if self.options_json else {}

    def generated(self, side: str) -> bool:
        return getattr(self, f"{side}_text") is not None


class EvalRating(SQLModel, table=True):
    """One rater's blind verdict on one item; rating again replaces it."""

    __tablename__ = "eval_ratings"
    __table_args__ = (UniqueConstraint("item_id", "rater", name="uq_eval_ratings_rater"),
                      Index("ix_eval_ratings_evaluation", "evaluation_id"))

    id: Optional[int] = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluations.id", ondelete="CASCADE")
    item_id: int = Field(foreign_key="eval_items.id", ondelete="CASCADE")
    rater: str
    verdict: str  # A / B / tie / neither, as the rater saw it
    preferred: str  # base / tuned / tie / neither: the verdict un-blinded with the item's a_side
    note: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: float = Field(default_factory=time.time)
