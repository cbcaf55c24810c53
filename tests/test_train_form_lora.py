"""A LoRA rank and alpha set in the Train form are the rank and alpha of the finished run's saved adapter.

The form's values go through the same code Launch uses (``form.values_to_config``, then ``enqueue``), the real
worker process trains the demo model, and the adapter is read back from the run's folder as a person would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import wait_for
from medcot_ui.jobkinds import enqueue
from medcot_ui.store import get_run
from medcot_ui.training import form
from medcot_ui.training.presets import quick_demo

# Neither is a default (16 / 16) and they differ, so a dropped or swapped setting shows.
RANK, ALPHA = 8, 32


def launch_from_form(**edits: Any) -> int:
    """What the Train tab's Launch does: the Quick demo preset's form values with the person's edits, validated
    into a config and queued. Returns the new run's id."""
    values = form.config_to_values(quick_demo())
    values.update(edits)
    return enqueue("train", form.values_to_config(values)).id


def train_with_rank_and_alpha_from_the_form(home: Path, processes: Any, backend: str) -> dict[str, Any]:
    """Launch a short demo run with RANK and ALPHA typed into the form, let a real worker train it on
    ``backend``, and return its saved ``runs/run-N/adapter/adapter_config.json``."""
    run_id = launch_from_form(**{"lora.r": RANK, "lora.alpha": ALPHA, "model.backend": backend,
                                 "training.max_steps": 2, "training.save_steps": 2})
    processes.worker("--max-runs", "1")
    wait_for(lambda: get_run(run_id).status in {"succeeded", "failed"}, timeout=200, interval=0.5,
             what=f"run {run_id} to finish")
    run = get_run(run_id)
    assert run.status == "succeeded", run.error
    return json.loads((home / "runs" / f"run-{run_id}" / "adapter" / "adapter_config.json").read_text())


def test_the_lora_rank_and_alpha_set_in_the_train_form_are_those_of_the_saved_adapter(
        home: Path, processes) -> None:  # noqa: ANN001
    saved = train_with_rank_and_alpha_from_the_form(home, processes, "transformers")
    assert (saved["r"], saved["lora_alpha"]) == (RANK, ALPHA)
