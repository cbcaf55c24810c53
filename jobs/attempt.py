"""The training process's claim on its run: every write it makes is checked against the attempt that owns the run.

Each claim raises ``runs.attempt`` by one, and the worker hands the number it claimed to the training process. A
training process left behind by a killed worker (paused during a slow model load, say) may wake up after its run
was reaped and claimed again: its writes -- pid, events, metric rows, the resume's metric delete, heartbeat,
outcome -- would then land in the live attempt. So each of them runs in a transaction that first checks, under
the run's write lock (``BEGIN IMMEDIATE`` on SQLite, a row lock on PostgreSQL), that the run is still ``running``
under this attempt's number, and writes nothing otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from medcot_ui.store import RunEvent, RunStatus, get_engine, read_session, write_session

STALE_EXIT_CODE = 3  # how a training process that lost its run exits (the worker's orphan guard uses it too)


def exit_code(status: RunStatus | None) -> int:
    """A job process's exit code for how its job ended: None means its attempt went stale."""
    if status is None:
        return STALE_EXIT_CODE
    return 0 if status in {RunStatus.succeeded, RunStatus.cancelled} else 1


class StaleAttempt(RuntimeError):
    """This attempt no longer owns the run (it was reaped, or claimed again by a newer attempt)."""


@dataclass(frozen=True)
class Attempt:
    run_id: int
    number: int

    def _check(self, session: Session, lock: bool) -> None:
        sql = "SELECT attempt, status FROM runs WHERE id = :id"
        if lock and get_engine().dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already holds the lock
            sql += " FOR UPDATE"
        row = session.connection().execute(text(sql), {"id": self.run_id}).first()
        if row is None or row[0] != self.number or row[1] != RunStatus.running:
            raise self._lost(row)

    def _lost(self, row: Any) -> StaleAttempt:
        now = "gone" if row is None else f"attempt {row[0]}, {row[1]}"
        return StaleAttempt(f"run {self.run_id}: attempt {self.number} no longer owns the run (now {now}); "
                            "this process stops without writing anything")

    def check(self) -> None:
        """Raise :class:`StaleAttempt` unless this attempt owns the run (a read; writes use :meth:`session`)."""
        with read_session() as s:
            self._check(s, lock=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction that checks ownership first, under the lock, and raises StaleAttempt if lost."""
        with write_session() as s:
            self._check(s, lock=True)
            yield s

    def heartbeat(self, step: int) -> bool:
        """Record the step reached, in one statement that matches only while this attempt owns the run; returns
        whether a cancel was requested, raises StaleAttempt when the run is no longer ours."""
        with write_session() as s:
            conn = s.connection()
            cancel = conn.execute(
                text("UPDATE runs SET heartbeat_at = :now, last_step = :step WHERE id = :id AND attempt = :attempt "
                     "AND status = :running RETURNING cancel_requested"),
                {"now": time.time(), "step": step, "id": self.run_id, "attempt": self.number,
                 "running": RunStatus.running.value}).first()
            if cancel is None:
                raise self._lost(conn.execute(text("SELECT attempt, status FROM runs WHERE id = :id"),
                                              {"id": self.run_id}).first())
        return bool(cancel[0])

    def event(self, message: str, level: str = "info") -> None:
        with self.session() as s:
            s.add(RunEvent(run_id=self.run_id, message=message, level=level))
