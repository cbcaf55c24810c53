"""The worker's snapshot thread (bucket storage only): a snapshot of runs.db on the mount after every run or
evaluation state change (queued, started, finished, failed, cancelled, deleted), every few minutes while work
is queued or running, and a last one when the worker stops (SIGTERM: the Space is restarting or pausing).

The worker owns it because it outlives every state change it records: on SIGTERM the app tells the worker to
stop, the worker marks its run interrupted, and only then is the final snapshot taken.
"""

from __future__ import annotations

import hashlib
import threading
import time

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from jobs.recovery import read_state
from medcot_ui.hosting import snapshots
from medcot_ui.settings import Settings
from medcot_ui.hosting.storage_status import bucket_mounted
from medcot_ui.store import get_engine

POLL_SECONDS = 2.0
# State changes come in bursts (queued, then started a second later): at most one snapshot this often for them.
MIN_GAP_SECONDS = 10.0


def state_fingerprint() -> tuple[str, bool]:
    """(a digest of every job's state, whether any job is queued or running): one small indexed query."""
    with get_engine().connect() as conn:
        rows = conn.execute(text("SELECT id, status, attempt, deleted_at FROM runs ORDER BY id")).all()
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digest, any(row[1] in ("queued", "running") for row in rows)


class SnapshotKeeper(threading.Thread):
    def __init__(self, settings: Settings, min_gap: float = MIN_GAP_SECONDS):
        super().__init__(daemon=True, name="snapshots")
        self.settings = settings
        self.min_gap = min_gap
        self._stop_event = threading.Event()
        self._seen: str | None = None
        self._pending = True  # the first snapshot of this start: the state may have changed while it was down
        self._last = 0.0
        self._lock = threading.Lock()  # the thread and the final snapshot never write at the same time

    @classmethod
    def for_settings(cls, settings: Settings) -> SnapshotKeeper | None:
        """A keeper when the database is SQLite on local disk and a bucket is mounted; None otherwise (the banner
        then says that storage is not persistent)."""
        if settings.storage_mode != "bucket" or settings.sqlite_path is None or not bucket_mounted(settings):
            return None
        return cls(settings)

    def run(self) -> None:
        while not self._stop_event.wait(POLL_SECONDS):
            try:
                self.tick()
            except OperationalError as exc:  # the database is briefly unavailable: the next poll retries
                print(f"[snapshots] database busy, retrying: {exc.orig}", flush=True)

    def tick(self) -> None:
        fingerprint, busy = state_fingerprint()
        if fingerprint != self._seen:
            self._seen, self._pending = fingerprint, True
        now = time.time()
        periodic = busy and now - self._last >= self.settings.snapshot_minutes * 60
        if (self._pending and now - self._last >= self.min_gap) or periodic:
            self.snapshot()

    def snapshot(self) -> snapshots.Snapshot | None:
        """One snapshot now; a failure is recorded for the banner and retried at the next tick."""
        with self._lock:
            self._last = time.time()
            try:
                taken = snapshots.take(self.settings.sqlite_path, self.settings.bucket_dir, app_state=read_state())
            except (OSError, snapshots.SnapshotError) as exc:
                snapshots.record_status(self.settings, None, f"{type(exc).__name__}: {exc}")
                print(f"[snapshots] could not write a snapshot to {self.settings.bucket_dir}: {exc}", flush=True)
                return None
            self._pending = False
            snapshots.record_status(self.settings, taken)
            return taken

    def close(self) -> snapshots.Snapshot | None:
        """Stop the thread and take the final snapshot."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=60)
        return self.snapshot()
