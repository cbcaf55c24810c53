"""The ``Publish`` rows: one per export or publish, written ``pending`` before anything happens and finished as
``succeeded`` or ``failed``, so the Publish tab's history and Retry survive a reload or a restart."""

from __future__ import annotations

import time
from typing import Any

from sqlmodel import select

from medcot_ui.store import Publish, read_session, write_session

# Rows still pending from before this process started belong to an app that stopped mid-publish.
PROCESS_STARTED = time.time()


def start_record(run_id: int, kind: str, destination: str, target: str, private: bool | None = None) -> int:
    with write_session() as s:
        row = Publish(run_id=run_id, kind=kind, destination=destination, target=target, private=private,
                      status="pending")
        s.add(row)
        s.flush()
        return int(row.id)


def update_record(record_id: int, **values: Any) -> None:
    with write_session() as s:
        row = s.get(Publish, record_id)
        for key, value in values.items():
            setattr(row, key, value)


def finish_record(record_id: int, status: str, **values: Any) -> None:
    update_record(record_id, status=status, finished_at=time.time(), **values)


def publishes_for_run(run_id: int) -> list[Publish]:
    with read_session() as s:
        return list(s.exec(select(Publish).where(Publish.run_id == run_id).order_by(Publish.id.desc())))


def reap_interrupted() -> int:
    """Pending rows left by an app that stopped mid-publish become failed (they never finished)."""
    with write_session() as s:
        rows = list(s.exec(select(Publish).where(Publish.status == "pending",
                                                 Publish.created_at < PROCESS_STARTED)))
        for row in rows:
            row.status, row.finished_at = "failed", time.time()
            row.error = "Interrupted: the app stopped before this publish finished. Retry it."
    return len(rows)


def last_failed(run_id: int) -> Publish | None:
    """The newest publish of ``run_id`` if it failed (what Retry repeats)."""
    rows = [p for p in publishes_for_run(run_id) if p.status != "pending"]
    return rows[0] if rows and rows[0].status == "failed" else None
