"""One evaluation process: ``python -m jobs.evaluate JOB_ID --attempt=N``, started by the worker like training.

Loads the run's base model once (with Compare's loader), puts the run's adapter on it for the tuned side (and the
other run's for the base side, run against run), and answers the stored questions in batches, base side then
tuned side, storing each batch as it is generated. A resumed job answers only what is missing; cancel is honoured
between batches.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from jobs.attempt import Attempt, StaleAttempt, exit_code
from jobs.train import limit_cpu_threads
from medcot_ui.compare.loading import load_model
from medcot_ui.compare.row_lora import read_adapter
from medcot_ui.data.load import DataError
from medcot_ui.evaluate.choice_data import question_with_options
from medcot_ui.evaluate.create import EvaluationError, evaluable_run
from medcot_ui.evaluate.generate import SideSwitch, answer_batch
from medcot_ui.evaluate.records import answered_count, evaluation_for_job, pending_items, store_answers
from medcot_ui.evaluate.tables import SIDES, EvalItem, Evaluation
from medcot_ui.hosting.redact import install as install_redaction
from medcot_ui.store import Run, RunStatus
from medcot_ui.training.models import ModelLoadError
from medcot_ui.training.prompts import PromptFormat


def load_models(evaluation: Evaluation) -> tuple[Any, PromptFormat, SideSwitch]:
    """The base model (loaded as Compare loads it), the tuned run's prompt format, and the switch that puts each
    side's adapter on it (the base side: none, or the other run's)."""
    import torch

    run, config = evaluable_run(evaluation.run_id)
    # A QLoRA run is evaluated on the 4-bit weights it was trained on (where there is a GPU to hold them).
    loaded = load_model(config.model.base_model, torch.cuda.is_available() and config.model.load_in_4bit)
    sides = {"base": None, "tuned": read_adapter(run.adapter_dir)}
    if evaluation.base_run_id is not None:
        other, _ = evaluable_run(evaluation.base_run_id)
        sides["base"] = read_adapter(other.adapter_dir)
    return loaded, PromptFormat.from_data_settings(config.data), SideSwitch(loaded.model, sides,
                                                                            evaluation.batch_size)


def _prompt_question(item: EvalItem) -> str:
    return question_with_options(item.question, item.options) if item.options else item.question


def answer_all(attempt: Attempt, evaluation: Evaluation, loaded: Any, fmt: PromptFormat,
               switch: SideSwitch) -> tuple[int, bool]:
    """Answer every missing question, batch by batch; returns (answers generated, cancelled).

    Each batch's answers are stored in a transaction that first checks this attempt still owns the job, and the
    heartbeat after it records the progress and reads a cancel request.
    """
    generated = 0
    while batch := pending_items(evaluation.id, evaluation.batch_size):
        for side in SIDES:
            todo = [item for item in batch if not item.generated(side)]
            if not todo:
                continue
            switch.use(side)
            answers = answer_batch(loaded.model, loaded.tokenizer, fmt, [_prompt_question(i) for i in todo],
                                   evaluation.max_new_tokens, greedy=evaluation.greedy,
                                   temperature=evaluation.temperature)
            with attempt.session() as s:
                generated += store_answers(s, todo, side, answers)
                done = answered_count(s, evaluation.id)
            if attempt.heartbeat(done):
                return generated, True
    return generated, False


def run_evaluation(job_id: int, attempt_number: int) -> RunStatus | None:
    """Generate the answers of evaluation job ``job_id`` (claimed as ``attempt_number``) and record its outcome;
    returns the status, or None when the attempt lost the job (it wrote nothing then)."""
    from jobs.queue import finish

    attempt = Attempt(job_id, attempt_number)
    evaluation = evaluation_for_job(job_id)
    if evaluation is None:
        finish(job_id, RunStatus.failed, f"job {job_id} has no evaluation", attempt=attempt_number)
        return RunStatus.failed
    limit_cpu_threads()
    try:
        attempt.check()  # a stale attempt stops before touching the GPU
        loaded, fmt, switch = load_models(evaluation)
        device = loaded.device
        with attempt.session() as s:
            row = s.get(Run, job_id)
            row.pid, row.device = os.getpid(), device
            before = answered_count(s, evaluation.id)
        attempt.event(f"evaluation {evaluation.id}: {before} of {2 * evaluation.n_items} answers stored earlier; "
                      f"generating the rest on {device}")
        generated, cancelled = answer_all(attempt, evaluation, loaded, fmt, switch)
        attempt.event(f"generated {generated} answers this attempt")
        status = RunStatus.cancelled if cancelled else RunStatus.succeeded
        finish(job_id, status, "cancelled; the answers stored so far are kept (resume to finish)" if cancelled
               else None, attempt=attempt_number)
        return status
    except StaleAttempt as exc:
        print(exc, flush=True)
        return None
    except (EvaluationError, DataError, ModelLoadError) as exc:
        finish(job_id, RunStatus.failed, str(exc), attempt=attempt_number)
    except Exception as exc:  # noqa: BLE001 - any crash must end the job, never the worker
        traceback.print_exc()
        finish(job_id, RunStatus.failed, f"{type(exc).__name__}: {exc}", attempt=attempt_number)
    return RunStatus.failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("job_id", type=int, help="an evaluation job already claimed by a worker")
    parser.add_argument("--attempt", type=int, required=True,
                        help="the attempt number the worker claimed; the process writes nothing once it is stale")
    args = parser.parse_args(argv)
    install_redaction()
    return exit_code(run_evaluation(args.job_id, args.attempt))


if __name__ == "__main__":
    sys.exit(main())
