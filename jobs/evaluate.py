"""One evaluation process: ``python -m jobs.evaluate JOB_ID``, started by the worker like a training run.

Loads the run's base model once (through the Compare engine's loader), attaches the run's adapter (and the other
run's, for run-against-run), and answers the stored questions in batches, base side then tuned side, storing
each batch as it is generated. A resumed job answers only what is missing; cancel is honoured between batches.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from medcot_ui.data.load import DataError
from medcot_ui.evaluate.choice_data import question_with_options
from medcot_ui.evaluate.create import EvaluationError, evaluable_run
from medcot_ui.evaluate.generate import answer_batch
from medcot_ui.evaluate.records import answered_count, evaluation_for_job, pending_items, store_answers
from medcot_ui.evaluate.tables import SIDES, EvalItem, Evaluation
from medcot_ui.hosting.redact import install as install_redaction
from medcot_ui.store import Run, RunStatus, add_event, get_run, read_session, write_session
from medcot_ui.training.models import ModelLoadError
from medcot_ui.training.prompts import PromptFormat


def adapter_name(run: Run) -> str:
    # As the Compare engine names adapters: the file's mtime makes a retrained run's new weights a new adapter.
    return f"run-{run.id}-{(run.adapter_dir / 'adapter_model.safetensors').stat().st_mtime_ns}"


def load_models(evaluation: Evaluation) -> tuple[Any, PromptFormat, dict[str, str | None], str]:
    """The shared base model with the adapters attached, the tuned run's prompt format, each side's adapter name
    (None: adapters off), and a description of the device."""
    from medcot_ui.compare.engine import CompareEngine

    run, config = evaluable_run(evaluation.run_id)
    # This process is the GPU's only user (the worker runs one job at a time): no training to wait for.
    engine = CompareEngine(training_probe=lambda: [])
    loaded = engine.load_base(config)
    sides: dict[str, str | None] = {"base": None, "tuned": adapter_name(run)}
    if evaluation.base_run_id is not None:
        other, _ = evaluable_run(evaluation.base_run_id)
        sides["base"] = adapter_name(other)
        engine._attach_adapter(loaded, sides["base"], other.adapter_dir)
    engine._attach_adapter(loaded, sides["tuned"], run.adapter_dir)
    return loaded, PromptFormat.from_data_settings(config.data), sides, loaded.device


def _prompt_question(item: EvalItem) -> str:
    return question_with_options(item.question, item.options) if item.options else item.question


def _cancel_requested(job_id: int) -> bool:
    row = get_run(job_id)
    return row is None or row.cancel_requested


def answer_all(job_id: int, evaluation: Evaluation, loaded: Any, fmt: PromptFormat,
               sides: dict[str, str | None]) -> tuple[int, bool]:
    """Answer every missing question, batch by batch; returns (answers generated, cancelled)."""
    generated = 0
    while batch := pending_items(evaluation.id, evaluation.batch_size):
        for side in SIDES:
            todo = [item for item in batch if not item.generated(side)]
            if not todo:
                continue
            if _cancel_requested(job_id):
                return generated, True
            answers = answer_batch(loaded.model, loaded.tokenizer, fmt, [_prompt_question(i) for i in todo],
                                   evaluation.max_new_tokens, adapter=sides[side], greedy=evaluation.greedy,
                                   temperature=evaluation.temperature)
            generated += store_answers(job_id, todo, side, answers)
    return generated, False


def run_evaluation(job_id: int) -> str:
    """Generate the answers of the evaluation job ``job_id`` (already claimed) and record its outcome."""
    from jobs.queue import finish

    evaluation = evaluation_for_job(job_id)
    if evaluation is None:
        finish(job_id, RunStatus.failed, f"job {job_id} has no evaluation")
        return RunStatus.failed.value
    _limit_cpu_threads()
    try:
        with read_session() as s:
            before = answered_count(s, evaluation.id)
        loaded, fmt, sides, device = load_models(evaluation)
        with write_session() as s:
            row = s.get(Run, job_id)
            row.pid, row.device = os.getpid(), device
        add_event(job_id, f"evaluation {evaluation.id}: {before} of {2 * evaluation.n_items} answers stored "
                          f"earlier; generating the rest on {device}")
        generated, cancelled = answer_all(job_id, evaluation, loaded, fmt, sides)
        add_event(job_id, f"generated {generated} answers this attempt")
        if cancelled:
            finish(job_id, RunStatus.cancelled, "cancelled; the answers stored so far are kept (resume to finish)")
            return RunStatus.cancelled.value
        finish(job_id, RunStatus.succeeded)
        return RunStatus.succeeded.value
    except (EvaluationError, DataError, ModelLoadError) as exc:
        finish(job_id, RunStatus.failed, str(exc))
    except Exception as exc:  # noqa: BLE001 - any crash must end the job, never the worker
        traceback.print_exc()
        finish(job_id, RunStatus.failed, f"{type(exc).__name__}: {exc}")
    return RunStatus.failed.value


def _limit_cpu_threads() -> None:
    """On CPU, few threads (as training does): the demo model's small matmuls gain nothing from more, and the
    machine's other processes (web app, worker) keep their cores."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("MEDCOT_CPU_THREADS", "1")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("job_id", type=int, help="an evaluation job already claimed by a worker")
    args = parser.parse_args(argv)
    install_redaction()
    status = run_evaluation(args.job_id)
    return 0 if status in {RunStatus.succeeded.value, RunStatus.cancelled.value} else 1


if __name__ == "__main__":
    sys.exit(main())
