"""After a restart: queue again, once, the runs the restart interrupted (``MEDCOT_AUTO_RESUME``, on by default on
a Space).

A restart interrupts a run in one of two ways. Stopped gracefully (a Space restart sends SIGTERM), the worker marks
its run ``interrupted`` while the app shuts down; the app notes when it began shutting down in ``app-state.json``.
Killed outright, the run stays ``running`` until its lease expires and a reaper marks it ``interrupted``. So the
runs a restart interrupted are: those ``running`` when the app starts, and those interrupted as the previous
app stopped (from ``STOP_MARGIN_S`` before it noted its shutdown). Each is resumed from its last checkpoint at
most once per step reached: a run interrupted again without getting further (a crash loop) waits for a person
to press Resume.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

from sqlmodel import select

from jobs.queue import QueueError, reap_expired, resume
from medcot_ui.hosting import bucket_files, snapshots
from medcot_ui.settings import Settings, get_settings
from medcot_ui.store import Run, RunEvent, RunStatus, add_event, get_run, read_session

STATE_FILE = "app-state.json"
# A signal sent to the whole process group (Ctrl-C, `docker stop` without tini) can reach the worker before the
# app notes that it is stopping: interruptions this shortly before that note still count as the shutdown's.
STOP_MARGIN_S = 30.0
AUTO_RESUME_EVENT = "auto-resumed after a restart at step"
_STEP = re.compile(re.escape(AUTO_RESUME_EVENT) + r" (\d+)")


def _state_path() -> Path:
    return get_settings().home / STATE_FILE


def read_state() -> dict:
    try:
        return json.loads(_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_state(state: dict) -> None:
    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    tmp.replace(path)


def record_start() -> dict:
    """Note this app's start; returns what the previous app left (``started_at``, ``stopping_at``)."""
    previous = read_state()
    _write_state({"started_at": time.time(), "stopping_at": None})
    return previous


def record_stopping() -> None:
    """Note that this app is shutting down (call before the worker is told to stop)."""
    state = read_state()
    state["stopping_at"] = time.time()
    _write_state(state)


def restore_from_bucket(settings: Settings) -> snapshots.Snapshot | None:
    """Bucket storage, a fresh local disk: the latest verified snapshot becomes runs.db, the kept files (the last
    checkpoint of each run, adapters, exports) come back, and so do the last app's restart notes, so that
    the auto-resume below treats the runs that snapshot saw running or interrupted by the shutdown as usual."""
    if settings.storage_mode != "bucket" or settings.sqlite_path is None or settings.sqlite_path.exists():
        return None
    snapshot = snapshots.restore(settings.sqlite_path, settings.bucket_dir)
    if snapshot is None:
        return None
    groups = bucket_files.restore(settings.home, settings.bucket_dir)
    if snapshot.app_state:
        _write_state(snapshot.app_state)
    print(f"[app] restored {settings.sqlite_path} from {snapshot.database} and {len(groups)} kept file sets",
          flush=True)
    return snapshot


def running_run_ids() -> set[int]:
    with read_session() as s:
        return set(s.exec(select(Run.id).where(Run.status == RunStatus.running)))


def _auto_resumed_at_steps(run_id: int) -> list[int]:
    with read_session() as s:
        messages = s.exec(select(RunEvent.message).where(RunEvent.run_id == run_id,
                                                         RunEvent.message.startswith(AUTO_RESUME_EVENT)))
        return [int(m.group(1)) for msg in messages if (m := _STEP.match(msg))]


def resume_interrupted(candidates: set[int], stopping_at: float | None) -> list[int]:
    """Queue again each interrupted run a restart interrupted (see the module doc); returns their ids."""
    with read_session() as s:
        # Evaluation jobs too (live_runs() lists training runs only): a restart interrupts both alike.
        rows = list(s.exec(select(Run).where(Run.status == RunStatus.interrupted, Run.deleted_at.is_(None))))
    resumed = []
    for run in rows:
        by_restart = run.id in candidates or (
            stopping_at is not None and (run.finished_at or 0) >= stopping_at - STOP_MARGIN_S)
        if not by_restart:
            continue
        if any(step >= run.last_step for step in _auto_resumed_at_steps(run.id)):
            add_event(run.id, "not resumed automatically: it was interrupted again before getting further "
                              "since the last automatic resume; press Resume to try again", "warning")
            candidates.discard(run.id)
            continue
        try:
            resume(run.id)
        except QueueError:
            continue  # someone resumed, cancelled or deleted it meanwhile
        add_event(run.id, f"{AUTO_RESUME_EVENT} {run.last_step}")
        candidates.discard(run.id)
        resumed.append(run.id)
    return resumed


class AutoResumer(threading.Thread):
    """Resumes the runs the last restart interrupted, once their leases have expired, then exits."""

    def __init__(self, previous_state: dict):
        super().__init__(daemon=True, name="auto-resume")
        self.candidates = running_run_ids()
        self.stopping_at = previous_state.get("stopping_at")
        self.resumed: list[int] = []

    def run(self) -> None:
        settings = get_settings()
        # A run killed with the old app keeps its lease for up to lease_seconds; wait that long, no longer.
        deadline = time.time() + settings.lease_seconds * 2 + 5
        while True:
            reap_expired()
            self.resumed += resume_interrupted(self.candidates, self.stopping_at)
            self.stopping_at = None  # those interrupted during the shutdown were handled in the first pass
            waiting = {i for i in self.candidates if (r := get_run(i)) is not None
                       and r.status == RunStatus.running}
            if not waiting or time.time() > deadline:
                for run_id in self.resumed:
                    print(f"[app] run {run_id}: interrupted by the restart, resumed from its last checkpoint",
                          flush=True)
                return
            time.sleep(settings.poll_seconds)
