"""Creating an evaluation: check the runs, gather and validate the questions, queue the job that answers them.

Everything a bad input can break is checked here, before anything is stored, so a refused evaluation loses nothing
and a queued one has every question (with its reference and its blind A/B order) in the database already.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcot_ui.data.load import map_rows, read_file
from medcot_ui.errors import MedcotError
from medcot_ui.errors import DataError
from medcot_ui.evaluate.choice_data import (DEFAULT_HUB_DATASET, ChoiceMapping, benchmark_items,
                                            question_with_options, read_records)
from medcot_ui.evaluate.contamination import ContaminationReport, check_contamination
from medcot_ui.evaluate.loglik import METHOD as LOGLIK
from medcot_ui.evaluate.tables import CHOICE, HELD_OUT, EvalItem, Evaluation
from medcot_ui.jobkinds import enqueue
from medcot_ui.store import Run, RunEvent, write_session
from medcot_ui.training.config import RunConfig

OVERLAPS_LOGGED = 50  # flagged questions listed in the job's log (the CLI's --check-only lists them all)
LIMITS = {"n": (1, 5000), "max_new_tokens": (1, 8192), "batch_size": (0, 256)}
GENERATE = "generate"
METHODS = (GENERATE, LOGLIK)
WEIGHTS = ("auto", "bf16", "4bit")  # auto: 16-bit when it fits the GPU, else 4-bit (a QLoRA run's adapter either way)


class EvaluationError(MedcotError, ValueError):
    """An evaluation that cannot be created; the message names the setting, run, row or column."""


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate. ``source``: held_out (the run's own held-out rows) or file for a held-out A/B;
    demo, hub or file for multiple choice."""

    kind: str = HELD_OUT
    run_id: int = 0
    base_run_id: int | None = None  # compare against another run (same base model) instead of the base
    n: int = 50
    source: str = "held_out"
    file_path: str = ""
    dataset_id: str = ""
    dataset_config: str = ""
    split: str = "test"
    mapping: dict[str, str] = field(default_factory=dict)  # question / options / answer columns; {} = detect
    max_new_tokens: int = 1024
    greedy: bool = True
    temperature: float = 0.6
    batch_size: int = 0  # engine slots (fixed-batch path: questions per batch); 0 = from free GPU memory
    weights: str = "auto"
    seed: int = 3407  # of the blind A/B order
    exclude_contaminated: bool = False  # leave out questions that share text with the runs' training rows
    method: str = GENERATE  # multiple choice: generate (reason, then a letter) or loglik (score each option)

    def check(self) -> None:
        if self.kind not in (HELD_OUT, CHOICE):
            raise EvaluationError(f"kind: '{self.kind}' is not one of {HELD_OUT}, {CHOICE}")
        for name, (lo, hi) in LIMITS.items():
            if not lo <= getattr(self, name) <= hi:
                raise EvaluationError(f"{name}: {getattr(self, name)} is outside {lo} to {hi}")
        if self.method not in METHODS:
            raise EvaluationError(f"method: '{self.method}' is not one of {', '.join(METHODS)}")
        if self.method == LOGLIK and self.kind != CHOICE:
            raise EvaluationError("method: log-likelihood scoring needs multiple-choice questions (kind choice)")
        if self.weights not in WEIGHTS:
            raise EvaluationError(f"weights: '{self.weights}' is not one of {', '.join(WEIGHTS)}")
        if not 0.01 <= self.temperature <= 2.0:
            raise EvaluationError(f"temperature: {self.temperature} is outside 0.01 to 2.0")


def evaluable_run(run_id: int) -> tuple[Run, RunConfig]:
    """A finished run with an adapter, and its config; EvaluationError (naming the run) otherwise."""
    from medcot_ui.compare.comparable import comparable_run
    from medcot_ui.compare.errors import CompareError

    try:
        run, config, _ = comparable_run(run_id)
    except CompareError as exc:
        raise EvaluationError(str(exc).replace("compared", "evaluated")) from None
    return run, config


def _held_out_questions(req: EvalRequest, run_id: int, config: RunConfig) -> tuple[list[dict[str, Any]], str]:
    if req.source == "file":
        data = config.data.model_copy(update={"source": "file", "file_path": req.file_path})
        rows = map_rows(read_file(Path(req.file_path)), data)
        where, warning = f"{Path(req.file_path).name} (all {len(rows)} rows)", None
    else:
        from medcot_ui.compare.comparable import held_out

        split = held_out(run_id)
        rows, warning = split.rows, split.warning
        where = f"held-out rows of run {run_id} (seed {config.data.split_seed})"
        if not rows:
            raise EvaluationError(f"run {run_id} held out no rows (data.eval_size is 0): evaluate on an uploaded "
                                  "file instead")
    if warning:  # kept with the evaluation (its source line): its results are read knowing it
        where += f"; warning: {warning}"
    return ([{"question": r.question, "reference_reasoning": r.reasoning, "reference_answer": r.answer}
             for r in rows], where)


def _choice_questions(req: EvalRequest) -> tuple[list[dict[str, Any]], str]:
    records, where = read_records(req.source, req.file_path, req.dataset_id or DEFAULT_HUB_DATASET,
                                  req.dataset_config, req.split)
    items, layout = benchmark_items(records, ChoiceMapping(**req.mapping) if req.mapping else None)
    where += f" ({layout})" if layout else ""
    return ([{"question": it.question, "options_json": json.dumps(it.options), "correct": it.answer,
              "reference_answer": f"{it.answer}. {it.options[it.answer]}"} for it in items], where)


def fewer_note(req: EvalRequest, evaluation: Evaluation) -> str:
    """What to say when fewer questions exist than were asked for: all of them are evaluated (the default N is
    more than the demo holds)."""
    if evaluation.n_items >= req.n:
        return ""
    return f" (you asked for {req.n}; that is every question there is)"


def create_evaluation(req: EvalRequest) -> Evaluation:
    """Validate ``req``, store its questions and queue its job; returns the evaluation (its ``job_id`` queued)."""
    req.check()
    run, config = evaluable_run(req.run_id)
    if req.base_run_id is not None:
        other, other_config = evaluable_run(req.base_run_id)
        if other_config.model.base_model != config.model.base_model:
            raise EvaluationError(f"base_run_id: run {other.id} was tuned from {other_config.model.base_model}, run "
                                  f"{run.id} from {config.model.base_model}; compare runs of one base model")
    questions, where = gather_questions(req, run.id, config)
    report = contamination_of(req, questions)
    if req.exclude_contaminated and report.overlaps:
        flagged = set(report.flagged)
        questions = [q for i, q in enumerate(questions) if i not in flagged]
        where += f"; {len(flagged)} questions that share text with the training rows left out"
    if not questions:
        raise EvaluationError("every question shares text with the training rows: nothing is left to evaluate")
    left_out = len(report.overlaps) if req.exclude_contaminated else 0
    note = {"checked": report.questions, "training_rows": report.training_rows, "flagged": len(report.overlaps),
            "left_out": left_out, "evaluated": 0 if left_out else sum(i < req.n for i in report.flagged)}
    questions = questions[:req.n]
    order = random.Random(req.seed)
    with write_session() as s:
        against = f"run {req.base_run_id}" if req.base_run_id is not None else "its base model"
        job = enqueue("evaluate", req, name=f"evaluate run {run.id} against {against}",
                      total_steps=2 * len(questions), parent_id=run.id, session=s)
        evaluation = Evaluation(job_id=job.id, kind=req.kind, run_id=run.id, base_run_id=req.base_run_id,
                                source=where, n_items=len(questions), max_new_tokens=req.max_new_tokens,
                                greedy=req.greedy, temperature=req.temperature, batch_size=req.batch_size,
                                contamination_json=json.dumps(note), method=req.method)
        s.add(evaluation)
        s.flush()
        for position, fields in enumerate(questions):
            s.add(EvalItem(evaluation_id=evaluation.id, position=position,
                           a_side=order.choice(("base", "tuned")), **fields))
        s.add(RunEvent(run_id=job.id, message=f"evaluation {evaluation.id}: {len(questions)} questions from {where}"))
        s.add(RunEvent(run_id=job.id, message=f"contamination check: {report.summary()}"))
        for line in overlap_lines(report)[:OVERLAPS_LOGGED]:
            s.add(RunEvent(run_id=job.id, message=line))
    return evaluation


def gather_questions(req: EvalRequest, run_id: int, config: RunConfig) -> tuple[list[dict[str, Any]], str]:
    """Every question the request names (before N is applied), and where they came from."""
    try:
        return (_held_out_questions(req, run_id, config) if req.kind == HELD_OUT else _choice_questions(req))
    except DataError as exc:
        raise EvaluationError(str(exc)) from None


def training_texts(run_ids: list[int]) -> list[str]:
    """What the runs trained on, one text per row: an SFT run's rows (question, reasoning and answer); a GRPO run's
    questions (with their options; its held-out part excluded), plus what the SFT run it continued trained on."""
    from medcot_ui.compare.comparable import held_out
    from medcot_ui.reinforce.questions import load_questions
    from medcot_ui.store import get_run

    texts: list[str] = []
    for run_id in run_ids:
        run = get_run(run_id)
        if run is not None and run.kind == "grpo":
            config = run.run_config()
            texts += [question_with_options(q.question, q.options) for q in load_questions(config).train]
            texts += training_texts([config.grpo.start_from_run]) if config.grpo.start_from_run else []
        else:
            texts += [f"{r.question}\n{r.reasoning}\n{r.answer}" for r in held_out(run_id).trained]
    return texts


def contamination_of(req: EvalRequest, questions: list[dict[str, Any]]) -> ContaminationReport:
    """The contamination check of the questions against the tuned run's training rows (and the other run's, when
    the evaluation compares two runs)."""
    runs = [req.run_id] + ([req.base_run_id] if req.base_run_id is not None else [])
    return check_contamination([q["question"] for q in questions], training_texts(runs))


def overlap_lines(report: ContaminationReport) -> list[str]:
    """One line per flagged question: which training row it shares text with, and the shared text."""
    return [f"question {o.item + 1} of the source shares {o.rule} with training row {o.training_row + 1}: "
            f"\"{_excerpt(o.shared)}\"" for o in report.overlaps]


def _excerpt(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
