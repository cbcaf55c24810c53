"""The Runs tab's table: one row per run (newest first, every active run included), why each queued run waits,
and the cheap signature the tab polls to know when to rebuild it. Read from the run store (no Gradio)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import func
from sqlmodel import select

from medcot_ui.runs.status import not_responding, status_text
from medcot_ui.store import Run, RunStatus, live_runs, read_session
from medcot_ui.training.config import RunConfig
from medcot_ui.units import duration, when

TABLE_COLUMNS = ["id", "name", "status", "model", "dataset", "started", "duration", "last loss", "steps", "queue"]
# Fixed shares of the table's width: long Hub names wrap in their own column instead of pushing the rest aside.
TABLE_WIDTHS = ["4%", "11%", "9%", "17%", "20%", "11%", "7%", "7%", "7%", "7%"]
TABLE_LIMIT = 200          # most recent runs shown (active runs are always shown)
# A queued run that no worker picked up within this long probably has no worker to go to.
NO_WORKER_AFTER_S = 15.0
ACTIVE = (RunStatus.queued, RunStatus.running)


@functools.lru_cache(maxsize=1024)  # a queued config never changes; validating it is most of a table row's cost
def config_summary(config_json: str) -> tuple[str, str]:
    """(model, dataset) as the table and the run's header show them."""
    try:
        config = RunConfig.from_json(config_json)
    except ValueError:  # not valid JSON, or no longer a valid config
        return "?", "?"
    data = config.data
    if data.source == "demo":
        dataset = "demo data"
    elif data.source == "file":
        dataset = data.file_label() or "?"
    else:
        dataset = f"{data.dataset_id} ({data.dataset_config}, {data.split})"
    return config.model.base_model, dataset


def _duration_of(started: float | None, finished: float | None, status: str, now: float) -> str:
    if not started or status == RunStatus.queued:  # a resumed run waiting again has no clock running
        return "-"
    return duration((now if status == RunStatus.running else finished or now) - started)


@dataclass
class QueueInfo:
    position: int
    reason: str  # the full sentence (the run's detail)
    brief: str   # what fits in the table's queue column

    def short(self) -> str:
        return f"#{self.position} · {self.brief}"


def queue_infos(s: Any, now: float) -> dict[int, QueueInfo]:
    """Why each queued run waits: which runs are training, or that no worker seems to be there."""
    queued = list(s.exec(select(Run.id, Run.created_at).where(Run.status == RunStatus.queued, live_runs())
                         .order_by(Run.id)))
    if not queued:
        return {}
    running = list(s.exec(select(Run.id, Run.name).where(Run.status == RunStatus.running)
                          .order_by(Run.id)))
    infos: dict[int, QueueInfo] = {}
    for pos, (run_id, created) in enumerate(queued, start=1):
        if running:
            busy = " and ".join(f"run {rid} ({name})" for rid, name in running)
            brief = f"{busy} {'is' if len(running) == 1 else 'are'} training"
            reason = f"waiting: {brief} (a worker trains one run at a time)"
            if pos > 1:
                reason += f"; {pos - 1} queued ahead"
                brief += f", {pos - 1} ahead"
        elif pos > 1:
            brief = f"after run {queued[0][0]}"
            reason = f"waiting: run {queued[0][0]} starts first"
        elif now - created > NO_WORKER_AFTER_S:
            brief = "no worker has picked it up"
            reason = ("waiting for a worker: none has picked it up. The app starts one unless it was started "
                      "with --no-worker; otherwise run `python -m jobs.worker`")
        else:
            brief = "starting"
            reason = "starting: a worker will pick it up in a moment"
        infos[run_id] = QueueInfo(pos, reason, brief)
    return infos


def table_rows(limit: int = TABLE_LIMIT, now: float | None = None) -> list[list[Any]]:
    """One row per run, newest first (every queued or running run is included even beyond ``limit``)."""
    now = now or time.time()
    cols = (Run.id, Run.name, Run.status, Run.config_json, Run.started_at, Run.finished_at, Run.last_step,
            Run.total_steps, Run.last_loss, Run.cancel_requested, Run.lease_expires_at, Run.heartbeat_at)
    with read_session() as s:
        recent = list(s.exec(select(*cols).where(live_runs()).order_by(Run.id.desc()).limit(limit)))
        oldest_shown = recent[-1][0] if recent else 0
        active = list(s.exec(select(*cols).where(Run.status.in_(ACTIVE), Run.id < oldest_shown, live_runs())
                             .order_by(Run.id.desc())))
        queue = queue_infos(s, now)
    rows = []
    for (rid, name, status, config_json, started, finished, step, total, loss, cancelling, lease, beat) in (
            active + recent):
        model, dataset = config_summary(config_json)
        rows.append([rid, name, status_text(status, cancelling, lease, beat, now), model, dataset, when(started),
                     _duration_of(started, finished, status, beat if not_responding(status, lease, now) else now),
                     f"{loss:.4f}" if loss is not None else "-", f"{step} / {total or '?'}",
                     queue[rid].short() if rid in queue else ""])
    return sorted(rows, key=lambda r: -r[0])


def table_frame() -> pd.DataFrame:
    return pd.DataFrame(table_rows(), columns=TABLE_COLUMNS)


def table_signature() -> tuple[Any, ...]:
    """Changes whenever any row the table shows could have changed (one aggregate query over runs)."""
    with read_session() as s:
        rows = s.exec(select(Run.status, func.count(Run.id), func.max(Run.id), func.sum(Run.last_step),
                             func.max(Run.heartbeat_at), func.max(Run.finished_at), func.max(Run.started_at),
                             func.sum(Run.cancel_requested)).where(live_runs()).group_by(Run.status)).all()
    # While a run is queued or running, a 5-second clock too: its duration and "waiting for a worker" change with
    # time alone. Otherwise nothing changes by itself, and the table is not rebuilt.
    clock = int(time.time() // 5) if any(r[0] in ACTIVE for r in rows) else None
    return tuple(sorted(tuple(r) for r in rows)) + (clock,)
