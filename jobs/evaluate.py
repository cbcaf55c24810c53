"""One evaluation process: ``python -m jobs.evaluate JOB_ID --attempt=N``, started by the worker like training.

Loads the run's base model once (16-bit when it fits the GPU, else 4-bit; the evaluation's ``weights`` can
insist), and answers every stored question that lacks an answer through the batch engine (both sides in shared
batches, continuous refill, a compiled decode step on a GPU), or in fixed batches for a model the engine does
not run; a log-likelihood evaluation scores each option instead of generating. Answers are stored every couple of seconds as they finish, with a heartbeat that reads a cancel
request; a resumed job answers only what is missing. If the worker dies the process stops within seconds.
"""

from __future__ import annotations

import os
import sys
import time

from jobs.attempt import Attempt
from jobs.orphan import OrphanGuard
from jobs.process import ended, job_main, limit_cpu_threads
from medcot_ui.evaluate.create import evaluable_run
from medcot_ui.evaluate.engine_answers import MERGE_TUNED, Answer, EngineAnswers, prompt_question
from medcot_ui.evaluate.generate import SideSwitch, answer_batch
from medcot_ui.evaluate.loglik import METHOD as LOGLIK, score_options, scored_answer
from medcot_ui.evaluate.records import answered_count, evaluation_for_job, pending_items, store_answers
from medcot_ui.evaluate.tables import SIDES, Evaluation
from medcot_ui.inference.loading import LoadedModel, load_model
from medcot_ui.inference.row_lora import AdapterWeights, read_adapter
from medcot_ui.inference.slot_model import slot_support
from medcot_ui.jobkinds import payload_of
from medcot_ui.store import Run, RunStatus, get_run
from medcot_ui.training.prompts import PromptFormat

FLUSH_SECONDS = 2.0  # answers are stored (and cancel read) at least this often: Cancel takes effect within 5 s


def _quantised(base_model: str, trained_in_4bit: bool, choice: str) -> bool:
    """4-bit when asked, or (auto) when a QLoRA run's base in 16 bits would leave less than a quarter of the GPU
    for the answers' cache; the adapter is the same either way."""
    import torch

    if not torch.cuda.is_available() or choice == "bf16":
        return False
    if choice == "4bit":
        return True
    from medcot_ui.training.model_shape import model_shape

    shape, _ = model_shape(base_model)
    free, total = torch.cuda.mem_get_info()
    return trained_in_4bit and (shape is None or 2 * shape.params > free - total // 4)


def load_models(evaluation: Evaluation, weights: str) -> tuple[LoadedModel, PromptFormat,
                                                                dict[str, AdapterWeights | None]]:
    """The base model, the tuned run's prompt format, and each side's adapter (base: none, or the other run's)."""
    run, config = evaluable_run(evaluation.run_id)
    loaded = load_model(config.model.base_model,
                        _quantised(config.model.base_model, config.model.load_in_4bit, weights))
    sides: dict[str, AdapterWeights | None] = {"base": None, "tuned": read_adapter(run.adapter_dir)}
    if evaluation.base_run_id is not None:
        other, _ = evaluable_run(evaluation.base_run_id)
        sides["base"] = read_adapter(other.adapter_dir)
    return loaded, PromptFormat.from_data_settings(config.data), sides


class AnswerWriter:
    """Stores finished answers every FLUSH_SECONDS (and at the end) under the attempt's fence, with a heartbeat
    that records progress and reads a cancel request."""

    def __init__(self, attempt: Attempt, evaluation: Evaluation, guard: OrphanGuard):
        self.attempt, self.evaluation, self.guard = attempt, evaluation, guard
        self.pending: list[Answer] = []
        self.generated, self.cancelled = 0, False
        self._last = time.monotonic()

    def add(self, answers: list[Answer]) -> None:
        self.pending.extend(answers)

    def should_stop(self) -> bool:
        """Polled by the engine between steps: flush when due; True once Cancel was pressed."""
        if time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()
        return self.cancelled

    def flush(self) -> None:
        with self.guard.lock:  # the orphan guard never exits halfway through a store
            if self.guard.orphaned():
                return  # the watchdog is about to stop the process: write nothing more
            with self.attempt.session() as s:
                for side in SIDES:
                    mine = [(item, answer) for item, answer_side, answer in self.pending if answer_side == side]
                    if mine:
                        self.generated += store_answers(s, [i for i, _ in mine], side, [a for _, a in mine])
                done = answered_count(s, self.evaluation.id)
            self.pending = []
            self.cancelled = self.attempt.heartbeat(done) or self.cancelled
        self._last = time.monotonic()


def answer_with_engine(writer: AnswerWriter, loaded: LoadedModel, fmt: PromptFormat,
                       sides: dict[str, AdapterWeights | None]) -> None:
    evaluation = writer.evaluation
    compiled = next(loaded.model.parameters()).device.type == "cuda" and not loaded.quantised
    if compiled:
        writer.attempt.event("compiling the decode step for this model (about a minute on a GPU)")
    merge = MERGE_TUNED and not loaded.quantised and sides["base"] is None and sides["tuned"] is not None
    writer.attempt.event("tuned side: the adapter merged into the 16-bit weights after the base side is answered"
                         if merge else "tuned side: the adapter applied per row, both sides in shared batches")
    answers = EngineAnswers(loaded.model, loaded.tokenizer, fmt, evaluation.max_new_tokens, compiled,
                            evaluation.greedy, evaluation.temperature, slots=evaluation.batch_size, merge=merge)
    stats = answers.run(pending_items(evaluation.id, evaluation.n_items), sides, writer.add, writer.should_stop)
    writer.flush()
    tokens, seconds = sum(s.tokens for s in stats), sum(s.seconds for s in stats)
    if seconds:
        writer.attempt.event(f"batch engine: {answers.engine.slots} slots, {tokens} tokens in {seconds:.0f} s "
                             f"({tokens / seconds:.0f} tokens/s)")


def answer_in_batches(writer: AnswerWriter, loaded: LoadedModel, fmt: PromptFormat,
                      sides: dict[str, AdapterWeights | None]) -> None:
    """The fixed-batch path (one ``generate`` per batch and side), for models the batch engine does not run."""
    evaluation = writer.evaluation
    size = evaluation.batch_size or 8
    switch = SideSwitch(loaded.model, sides, size)
    while (batch := pending_items(evaluation.id, size)) and not writer.cancelled:
        for side in SIDES:
            todo = [item for item in batch if not item.generated(side)]
            if todo:
                switch.use(side)
                answers = answer_batch(loaded.model, loaded.tokenizer, fmt, [prompt_question(i) for i in todo],
                                       evaluation.max_new_tokens, greedy=evaluation.greedy,
                                       temperature=evaluation.temperature)
                writer.add([(item, side, answer) for item, answer in zip(todo, answers)])
        writer.flush()


def answer_by_loglik(writer: AnswerWriter, loaded: LoadedModel, fmt: PromptFormat,
                     sides: dict[str, AdapterWeights | None]) -> None:
    """Log-likelihood scoring: one forward pass per question and side, no generation (``evaluate/loglik.py``)."""
    evaluation = writer.evaluation
    items = pending_items(evaluation.id, evaluation.n_items)
    rows = max((len(item.options) for item in items), default=1)
    switch = SideSwitch(loaded.model, sides, rows)
    for side in SIDES:
        switch.use(side)
        for item in items:
            if item.generated(side):
                continue
            if writer.should_stop():
                writer.flush()
                return
            start = time.perf_counter()
            scores = score_options(loaded.model, loaded.tokenizer, item.question, item.options, rows)
            writer.add([(item, side, scored_answer(scores, time.perf_counter() - start))])
    writer.flush()


def _generate(attempt: Attempt, evaluation: Evaluation, writer: AnswerWriter) -> bool:
    """Load, answer what is missing; returns whether the job was cancelled."""
    loaded, fmt, sides = load_models(evaluation, payload_of(get_run(attempt.run_id)).weights)
    with attempt.session() as s:
        row = s.get(Run, attempt.run_id)
        row.pid, row.device = os.getpid(), loaded.device
        before = answered_count(s, evaluation.id)
    if evaluation.method == LOGLIK:
        attempt.event(f"evaluation {evaluation.id}: {before} of {2 * evaluation.n_items} answers stored earlier; "
                      f"scoring the rest by log-likelihood on {loaded.device}")
        answer_by_loglik(writer, loaded, fmt, sides)
        return writer.cancelled
    why_not = slot_support(loaded.model)
    attempt.event(f"evaluation {evaluation.id}: {before} of {2 * evaluation.n_items} answers stored earlier; "
                  f"generating the rest on {loaded.device}"
                  + (f" in fixed batches ({why_not})" if why_not else " with the batch engine"))
    (answer_in_batches if why_not else answer_with_engine)(writer, loaded, fmt, sides)
    return writer.cancelled


def run_evaluation(job_id: int, attempt_number: int, parent_pid: int | None = None) -> RunStatus | None:
    """Generate the answers of evaluation job ``job_id`` (claimed as ``attempt_number``) and record its outcome;
    returns the status, or None when the attempt lost the job (it wrote nothing then)."""
    from jobs.queue import finish

    attempt = Attempt(job_id, attempt_number)
    evaluation = evaluation_for_job(job_id)
    if evaluation is None:
        finish(job_id, RunStatus.failed, f"job {job_id} has no evaluation", attempt=attempt_number)
        return RunStatus.failed
    limit_cpu_threads()
    guard = OrphanGuard(parent_pid, lambda: f"this attempt stored {writer.generated} answers")
    writer = AnswerWriter(attempt, evaluation, guard)
    guard.start()

    def body() -> RunStatus | None:
        attempt.check()  # a stale attempt stops before touching the GPU
        cancelled = _generate(attempt, evaluation, writer)
        with guard.lock:
            if guard.orphaned():
                return None  # the watchdog ends the process; the job is the next attempt's
            attempt.event(f"generated {writer.generated} answers this attempt")
            status = RunStatus.cancelled if cancelled else RunStatus.succeeded
            finish(job_id, status, "cancelled; the answers stored so far are kept (resume to finish)"
                   if cancelled else None, attempt=attempt_number)
        return status

    return ended(job_id, attempt_number, body)


def main(argv: list[str] | None = None) -> int:
    parent = int(os.environ["MEDCOT_PARENT_PID"]) if os.environ.get("MEDCOT_PARENT_PID") else None
    return job_main(__doc__.splitlines()[0], lambda job, attempt: run_evaluation(job, attempt, parent), argv)


if __name__ == "__main__":
    sys.exit(main())
