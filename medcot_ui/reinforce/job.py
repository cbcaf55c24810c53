"""The GRPO job kind: a RunConfig whose training.method is grpo, run by ``jobs.grpo``. Its payload is the training
kind's, so Runs, Compare, Evaluate and Publish read a GRPO run as any tuned run."""

from __future__ import annotations

from medcot_ui.jobkinds import Kind, register
from medcot_ui.training.config import RunConfig


def _summary(config: RunConfig) -> str:
    g = config.grpo
    start = f"run {g.start_from_run}'s adapter" if g.start_from_run else config.model.base_model
    return (f"GRPO on {start}: {g.questions} questions, {g.num_generations} completions each, up to "
            f"{g.max_completion_length} tokens")


GRPO = register(Kind(
    name="grpo", payload=RunConfig, module="jobs.grpo", process="GRPO training", log_name="train.log",
    folder="run", summary=_summary, steps=lambda config: config.training.max_steps or None,
    title=lambda config: config.name, read=RunConfig.from_json, write=RunConfig.to_json))
