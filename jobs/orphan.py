"""A job process that outlives its worker stops within seconds, saying truthfully what it wrote.

When the worker is killed (kill -9), its job process is re-parented and nobody renews the lease; the run
becomes interrupted and another attempt may take it. A watchdog thread notices the changed parent and exits the
process. Writes take ``lock``, so the exit never falls inside one: the log line's count is exact.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from jobs.attempt import STALE_EXIT_CODE
from jobs.ranks import worker_pid

POLL_SECONDS = 1.0


class OrphanGuard:
    """Watches the worker ``parent_pid`` (None: no worker, a job run by hand); ``written`` says what this process
    stored so far, for the last log line."""

    def __init__(self, parent_pid: int | None, written: Callable[[], str]):
        self.parent_pid, self.written = parent_pid, written
        self.lock = threading.Lock()

    def orphaned(self) -> bool:
        return self.parent_pid is not None and worker_pid() != self.parent_pid

    def start(self) -> OrphanGuard:
        if self.parent_pid is not None:
            threading.Thread(target=self._watch, name="orphan-guard", daemon=True).start()
        return self

    def _watch(self) -> None:
        while not self.orphaned():
            time.sleep(POLL_SECONDS)
        with self.lock:  # never in the middle of a write
            print(f"the worker (pid {self.parent_pid}) is gone: stopping; {self.written()}, nothing after",
                  flush=True)
            os._exit(STALE_EXIT_CODE)
