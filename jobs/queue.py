"""The run queue: atomic claim, lease and heartbeat, reap, cancel, resume, delete and restore.

A job is one ``runs`` row, of any kind (medcot_ui/jobkinds.py registers the kinds and holds the one enqueue).
Claiming is a single ``UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING`` inside ``BEGIN IMMEDIATE``, so two
workers can never claim the same run and nobody sees "database is locked".
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import delete, select

from medcot_ui.errors import MedcotError
from medcot_ui.settings import get_settings
from medcot_ui.store import RESUMABLE, Run, RunEvent, RunStatus, get_engine, write_session


class QueueError(MedcotError, ValueError):
    """An action that the run's state does not allow (e.g. resuming a run that succeeded)."""


# What claiming does to a run, whichever way it is picked (the oldest queued one, or one given by id).
_CLAIM_SET = ("UPDATE runs SET status = 'running', worker_id = :worker, attempt = attempt + 1, "
              "lease_expires_at = :lease, heartbeat_at = :now, started_at = COALESCE(started_at, :now), "
              "finished_at = NULL, error = NULL ")


def _claim_params(worker_id: str, lease_seconds: float | None) -> dict[str, Any]:
    now = time.time()
    lease = lease_seconds if lease_seconds is not None else get_settings().lease_seconds
    return {"worker": worker_id, "lease": now + lease, "now": now}


def claim(worker_id: str, lease_seconds: float | None = None) -> int | None:
    """Atomically take the oldest queued run for ``worker_id``; returns its id, or None when the queue is empty."""
    # SKIP LOCKED lets PostgreSQL workers pass over a row another worker is claiming; SQLite serialises
    # writers with BEGIN IMMEDIATE instead.
    lock = " FOR UPDATE SKIP LOCKED" if get_engine().dialect.name == "postgresql" else ""
    sql = text(_CLAIM_SET + "WHERE id = (SELECT id FROM runs WHERE status = 'queued' AND deleted_at IS NULL "
               f"ORDER BY id LIMIT 1{lock}) AND status = 'queued' AND deleted_at IS NULL RETURNING id")
    with write_session() as s:
        row = s.connection().execute(sql, _claim_params(worker_id, lease_seconds)).first()
        if row is None:
            return None
        s.add(RunEvent(run_id=row[0], message=f"claimed by worker {worker_id}"))
        return int(row[0])


def claim_specific(run_id: int, worker_id: str, lease_seconds: float | None = None) -> int:
    """Claim one given queued run (direct CLI training); returns the attempt number claimed, raises QueueError
    when someone else has it."""
    with write_session() as s:
        row = s.connection().execute(
            text(_CLAIM_SET + "WHERE id = :id AND status = 'queued' AND deleted_at IS NULL RETURNING attempt"),
            {**_claim_params(worker_id, lease_seconds), "id": run_id}).first()
        if row is None:
            _existing(s, run_id)  # says so when it does not exist or was deleted
            raise QueueError(f"run {run_id} is not queued; it cannot be claimed")
        s.add(RunEvent(run_id=run_id, message=f"claimed by worker {worker_id}"))
        return int(row[0])


def renew_lease(run_id: int, worker_id: str, pid: int | None = None, lease_seconds: float | None = None) -> bool:
    """Extend the lease; False when the run is no longer ours (reaped, or claimed elsewhere)."""
    lease = lease_seconds if lease_seconds is not None else get_settings().lease_seconds
    now = time.time()
    with write_session() as s:
        res = s.connection().execute(
            text("UPDATE runs SET lease_expires_at = :lease, heartbeat_at = :now, pid = COALESCE(:pid, pid) "
                 "WHERE id = :id AND worker_id = :worker AND status = 'running'"),
            {"lease": now + lease, "now": now, "pid": pid, "id": run_id, "worker": worker_id})
        return res.rowcount == 1


class LeaseKeeper(threading.Thread):
    """Renews a run's lease every third of the lease time while the training it guards is alive."""

    def __init__(self, run_id: int, worker_id: str, pid: int | None = None):
        super().__init__(daemon=True, name=f"lease-{run_id}")
        self.run_id, self.worker_id, self.pid = run_id, worker_id, pid
        self.lost = False  # the run was reaped or taken: the guarded training must stop
        self._stop_event = threading.Event()

    def run(self) -> None:
        interval = get_settings().lease_seconds / 3
        while not self._stop_event.wait(interval):
            try:
                renewed = renew_lease(self.run_id, self.worker_id, self.pid)
            except OperationalError:  # briefly unavailable: try again next interval, within the lease
                continue
            if not renewed:
                self.lost = True
                return

    def __enter__(self) -> "LeaseKeeper":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join()


def reap_expired(now: float | None = None) -> list[int]:
    """Turn running runs whose lease expired (their worker died) into 'interrupted'."""
    now = now or time.time()
    with write_session() as s:
        rows = s.connection().execute(
            text("UPDATE runs SET status = 'interrupted', finished_at = :now, "
                 "error = 'The worker stopped heartbeating (it or the machine was stopped). Resume to continue "
                 "from the last checkpoint.' "
                 "WHERE status = 'running' AND lease_expires_at < :now RETURNING id"), {"now": now}).all()
        ids = [int(r[0]) for r in rows]
        for run_id in ids:
            s.add(RunEvent(run_id=run_id, level="warning", message="lease expired: marked interrupted"))
    return ids


def finish(run_id: int, status: RunStatus, error: str | None = None, only_if_running: bool = True,
           attempt: int | None = None) -> bool:
    """Record a run's outcome (no-op when it already left 'running' and ``only_if_running``, or when ``attempt``
    is given and is no longer the run's attempt: a newer claim owns it)."""
    with write_session() as s:
        run = s.get(Run, run_id, with_for_update=True)
        if run is None or (only_if_running and run.status != RunStatus.running):
            return False
        if attempt is not None and run.attempt != attempt:
            return False
        run.status = status
        run.finished_at = time.time()
        run.error = error
        run.lease_expires_at = None
        s.add(RunEvent(run_id=run_id, level="error" if status == RunStatus.failed else "info",
                       message=f"{status}" + (f": {error}" if error else "")))
        return True


def _existing(session: Any, run_id: int) -> Run:
    run = session.get(Run, run_id, with_for_update=True)  # row lock on PostgreSQL; SQLite has BEGIN IMMEDIATE
    if run is None:
        raise QueueError(f"run {run_id} does not exist")
    if run.deleted:
        raise QueueError(f"run {run_id} was deleted; restore it first")
    return run


def request_cancel(run_id: int) -> RunStatus:
    """Cancel: a queued run is cancelled at once; a running one stops at its next step and saves its adapter."""
    with write_session() as s:
        run = _existing(s, run_id)
        if run.status == RunStatus.queued:
            run.status, run.finished_at = RunStatus.cancelled, time.time()
            s.add(RunEvent(run_id=run_id, message="cancelled while queued"))
            return RunStatus.cancelled
        if run.status != RunStatus.running:
            raise QueueError(f"run {run_id} is {run.status}; only queued or running runs can be cancelled")
        run.cancel_requested = True
        s.add(RunEvent(run_id=run_id, message="cancel requested: stopping at the next step"))
        return run.status


def resume(run_id: int) -> Run:
    """Queue an interrupted or cancelled run again; it continues from its last checkpoint."""
    with write_session() as s:
        run = _existing(s, run_id)
        if run.status not in RESUMABLE:
            raise QueueError(f"run {run_id} is {run.status}; only interrupted or cancelled runs can be resumed")
        run.status, run.resume, run.cancel_requested = RunStatus.queued, True, False
        run.error, run.finished_at, run.worker_id, run.pid = None, None, None, None
        s.add(RunEvent(run_id=run_id, message="resume queued: will continue from the last checkpoint"))
        return run


def delete_run(run_id: int) -> None:
    """Delete a finished or queued run: it leaves every list (and the queue) at once, and stays restorable with
    :func:`restore_run` for ``settings.undo_seconds``; then :func:`purge_deleted` removes it with its files.
    A running run must be cancelled first."""
    with write_session() as s:
        run = _existing(s, run_id)
        if run.status == RunStatus.running:
            raise QueueError(f"run {run_id} is running; cancel it before deleting it")
        run.deleted_at = time.time()
        s.add(RunEvent(run_id=run_id, message="deleted (restorable until it is purged)"))


def restore_run(run_id: int) -> Run:
    """Undo a delete: the run comes back as it was (a queued run is queued again)."""
    with write_session() as s:
        run = s.get(Run, run_id, with_for_update=True)
        if run is None:
            raise QueueError(f"run {run_id} does not exist (deleted runs are removed for good after "
                             f"{get_settings().undo_seconds / 60:.0f} minutes)")
        if not run.deleted:
            raise QueueError(f"run {run_id} is not deleted")
        run.deleted_at = None
        s.add(RunEvent(run_id=run_id, message="restored"))
        return run


def purge_deleted(older_than_s: float | None = None) -> list[int]:
    """Remove for good the runs deleted more than ``older_than_s`` ago (default settings.undo_seconds), their files
    and local exports; the database deletes every row that belongs to them (foreign keys cascade: metrics, events,
    comparisons, publishes, evaluations and the jobs queued for them). Returns their ids."""
    settings = get_settings()
    cutoff = time.time() - (settings.undo_seconds if older_than_s is None else older_than_s)
    with write_session() as s:
        # A running run is never deleted; the status test only guards against a claim that raced a delete.
        ids = list(s.exec(select(Run.id).where(Run.deleted_at.is_not(None), Run.deleted_at <= cutoff,
                                               Run.status != RunStatus.running).with_for_update()))
        folders = [(run_id, out) for run_id, out in s.exec(select(Run.id, Run.output_dir).where(
            Run.id.in_(ids) | Run.parent_id.in_(ids)))]
        s.exec(delete(Run).where(Run.id.in_(ids)))
    runs_root = settings.runs_dir.resolve()
    for run_id, out in folders:
        # Only ever remove folders inside our own runs directory, whatever the row says.
        if out and Path(out).resolve().is_relative_to(runs_root) and Path(out).exists():
            shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(settings.run_exports_dir(run_id), ignore_errors=True)  # its local exports too
    return ids
