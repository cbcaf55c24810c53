"""One GRPO process: ``python -m jobs.grpo RUN_ID --attempt=N``, started by the worker for a ``grpo`` job.

The run's config is a RunConfig with ``training.method = grpo``: the model and LoRA load as for supervised
training (Unsloth or transformers + PEFT, 4-bit as configured), optionally continuing a finished SFT run's
adapter; TRL's GRPOTrainer samples ``grpo.num_generations`` completions per question with transformers' own
generation (vLLM is never required) and rewards them (``medcot_ui.reinforce.rewards``). Metrics, cancel, the
orphan guard, checkpoints and resume are the training process's (``jobs.callbacks``, ``jobs.train``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from jobs.attempt import Attempt
from jobs.process import ended, job_main, limit_cpu_threads
from jobs.ranks import save_adapter
from jobs.train import (OOM_ADVICE, is_oom, job_start, package_versions, record_end, resume_point,
                        trainer_arguments)
from medcot_ui.reinforce.questions import Questions, load_questions, prompt_rows
from medcot_ui.reinforce.rewards import RewardLog, reward_functions
from medcot_ui.store import ADAPTER_FOLDER, Run, RunEvent, RunStatus, get_run
from medcot_ui.training.config import ConfigError, RunConfig
from medcot_ui.training.models import LoadedModel, choose_backend, load_for_training
from medcot_ui.training.prompts import PromptFormat

HELD_OUT_FILE = "held_out_questions.jsonl"  # in the run folder: the questions to evaluate the run on


class CompletionSamples(TrainerCallback):
    """Each logging step, a couple of the latest completions with their correctness reward go to the run log."""

    def __init__(self, attempt: Attempt, log: RewardLog):
        self.attempt, self.log = attempt, log

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs and self.log.rows:
            self.attempt.event(f"step {state.global_step} completions: " + " | ".join(self.log.sample()))


def continue_adapter(model: Any, config: RunConfig) -> str | None:
    """Load a finished SFT run's adapter weights into the fresh LoRA layers; returns what was loaded."""
    run_id = config.grpo.start_from_run
    if not run_id:
        return None
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    source = get_run(run_id)
    if source is None or not source.has_adapter:
        raise ConfigError([f"grpo.start_from_run: run {run_id} does not exist or saved no adapter"])
    theirs = source.run_config()
    if theirs.model.base_model != config.model.base_model:
        raise ConfigError([f"grpo.start_from_run: run {run_id} tuned {theirs.model.base_model}, this run loads "
                           f"{config.model.base_model}"])
    if (theirs.lora.r, theirs.lora.target_modules) != (config.lora.r, config.lora.target_modules):
        raise ConfigError([f"grpo.start_from_run: run {run_id} has LoRA rank {theirs.lora.r} on "
                           f"{', '.join(theirs.lora.target_modules)}; set the same LoRA settings here"])
    result = set_peft_model_state_dict(model, load_file(str(source.adapter_dir / "adapter_model.safetensors")))
    if getattr(result, "unexpected_keys", None):
        raise ConfigError([f"grpo.start_from_run: run {run_id}'s adapter does not fit this model"])
    return f"continuing run {run_id}'s adapter"


def generation_problem(config: RunConfig, backend: str) -> str | None:
    """Why the run's generation option cannot run on ``backend``, or None. Measured on an H100
    (docs/BENCHMARKS.md): with Unsloth, TRL's continuous batching fails every request."""
    if config.grpo.generation == "continuous_batching" and backend == "unsloth":
        return ("grpo.generation: continuous batching does not run with the Unsloth backend (its paged batch "
                "exceeds Unsloth's attention limits); choose 'generate', or set model.backend to transformers")
    return None


def build_grpo_trainer(config: RunConfig, loaded: LoadedModel, questions: Questions, output_dir: Path,
                       callbacks: list[Any], log: RewardLog) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    g = config.grpo
    funcs, weights = reward_functions({"correctness": g.correctness_weight, "format": g.format_weight,
                                       "length": g.length_weight}, g.max_completion_length, log)
    args = GRPOConfig(**trainer_arguments(config, output_dir), num_generations=g.num_generations,
                      max_completion_length=g.max_completion_length, temperature=g.temperature, beta=g.beta,
                      reward_weights=weights, log_completions=False,
                      use_transformers_continuous_batching=g.generation == "continuous_batching")
    rows = prompt_rows(questions.train, PromptFormat.from_data_settings(config.data), loaded.tokenizer)
    return GRPOTrainer(model=loaded.model, reward_funcs=funcs, args=args, train_dataset=Dataset.from_dict(rows),
                       processing_class=loaded.tokenizer, callbacks=callbacks)


def _load(attempt: Attempt, config: RunConfig, output_dir: Path) -> tuple[LoadedModel, Questions]:
    attempt.check()
    questions = load_questions(config)  # a bad file fails before the model is loaded
    if problem := generation_problem(config, choose_backend(config.model.backend)):
        raise ConfigError([problem])
    loaded = load_for_training(config)
    continued = continue_adapter(loaded.model, config)
    with attempt.session() as s:
        row = s.get(Run, attempt.run_id)
        (output_dir / HELD_OUT_FILE).write_text("".join(
            json.dumps({"question": q.question, "options": q.options, "answer_idx": q.answer}) + "\n"
            for q in questions.held_out), encoding="utf-8")
        row.pid, row.device = os.getpid(), loaded.device
        row.versions_json = json.dumps(package_versions())
        s.add(RunEvent(run_id=attempt.run_id, message=f"model loaded: {config.model.base_model} with the "
                                                      f"{loaded.backend} backend on {loaded.device}"
                                                      + (f"; {continued}" if continued else "")))
        s.add(RunEvent(run_id=attempt.run_id, message=f"questions: {len(questions.train)} to reinforce on, "
                                                      f"{len(questions.held_out)} held out ({HELD_OUT_FILE}) from "
                                                      f"{questions.source}"))
    return loaded, questions


def _reinforce(run: Run, attempt: Attempt, parent_pid: int | None) -> RunStatus:
    from jobs.callbacks import BucketCheckpoints, StudioCallback
    from jobs.queue import finish

    config, output_dir, started = job_start(run)
    loaded, questions = _load(attempt, config, output_dir)
    callback, log = StudioCallback(attempt, parent_pid), RewardLog([])
    trainer = build_grpo_trainer(config, loaded, questions, output_dir,
                                 [callback, BucketCheckpoints(), CompletionSamples(attempt, log)], log)
    checkpoint = resume_point(attempt, output_dir, run.resume)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if callback.failure:
        finish(run.id, RunStatus.failed, callback.failure, attempt=attempt.number)
        return RunStatus.failed
    attempt.check()
    save_adapter(trainer, loaded.model, loaded.tokenizer, output_dir / ADAPTER_FOLDER)
    return record_end(run, attempt, config, output_dir, loaded.backend, started, callback.cancelled)


def run_grpo(run_id: int, attempt_number: int, parent_pid: int | None = None) -> RunStatus | None:
    run = get_run(run_id)
    if run is None:
        raise SystemExit(f"run {run_id} does not exist")
    attempt = Attempt(run_id, attempt_number)
    limit_cpu_threads()
    return ended(run_id, attempt_number, lambda: _reinforce(run, attempt, parent_pid),
                 crash_message=lambda exc: OOM_ADVICE if is_oom(exc) else f"{type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    parent = int(os.environ["MEDCOT_PARENT_PID"]) if os.environ.get("MEDCOT_PARENT_PID") else None
    return job_main(__doc__.splitlines()[0], lambda run_id, attempt: run_grpo(run_id, attempt, parent), argv)


if __name__ == "__main__":
    sys.exit(main())
