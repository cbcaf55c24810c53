"""The training job kind: a RunConfig, trained by ``jobs.train`` (under a data-parallel launcher when the config
asks for several processes)."""

from __future__ import annotations

from medcot_ui.jobkinds import Kind, register
from medcot_ui.training.config import RunConfig


def _summary(config: RunConfig) -> str:
    return f"train {config.model.base_model} on {config.data.source} data"


TRAIN = register(Kind(
    name="train", payload=RunConfig, module="jobs.train", process="training", log_name="train.log", folder="run",
    summary=_summary, steps=lambda config: config.training.max_steps or None,
    processes=lambda config: config.training.num_processes, title=lambda config: config.name,
    # RunConfig's own reader names each field a stored config no longer satisfies.
    read=RunConfig.from_json, write=RunConfig.to_json))
