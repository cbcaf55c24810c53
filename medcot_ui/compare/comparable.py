"""Which runs can be compared (finished, with an adapter), and each run's held-out questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcot_ui.compare.errors import CompareError
from medcot_ui.data.held_out import HeldOut, StoredSplit, held_out_of, read_split
from medcot_ui.training.config import RunConfig


def comparable_run(run_id: int) -> tuple[Any, RunConfig, Path]:
    """The run, its config and its adapter folder; CompareError when it has no adapter to compare."""
    from medcot_ui.store import RunStatus, get_run

    run = get_run(int(run_id))
    if run is None or run.deleted:
        raise CompareError(f"run {run_id} does not exist" + (" (it was deleted)" if run is not None else ""))
    adapter = run.adapter_dir
    if run.status not in (RunStatus.succeeded, RunStatus.cancelled):
        raise CompareError(f"run {run_id} is {run.status}: only a finished run (or a cancelled one that saved its "
                           "adapter) can be compared")
    if not run.has_adapter:
        raise CompareError(f"run {run_id} saved no adapter (expected {adapter}); it cannot be compared")
    return run, run.run_config(), adapter


def comparable_runs() -> list[Any]:
    """Finished runs with a saved adapter, newest first."""
    from medcot_ui.store import RunStatus, list_runs

    return [r for r in list_runs() if r.status in (RunStatus.succeeded, RunStatus.cancelled)
            and r.has_adapter]


_HELD_OUT: dict[tuple[int, str, StoredSplit | None], HeldOut] = {}


def held_out(run_id: int) -> HeldOut:
    """The run's held-out rows (question, reasoning, answer): those its training stored as held out, read from
    its data today, with a warning when that data changed since."""
    from medcot_ui.data.load import prepare
    from medcot_ui.training.models import load_tokenizer

    run, config, _ = comparable_run(run_id)
    stored = read_split(Path(run.output_dir))
    key = (run.id, config.to_json(), stored)
    if key not in _HELD_OUT:
        _HELD_OUT[key] = held_out_of(prepare(config.data, load_tokenizer(config.model.base_model)), stored)
    return _HELD_OUT[key]


def held_out_rows(run_id: int) -> list[Any]:
    return held_out(run_id).rows
