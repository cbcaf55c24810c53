"""How a run's state is shown: what its row says, except that a run whose lease has expired is not called running.

A worker renews the lease of the run it trains every few seconds. Once the lease has expired, the worker (or the
machine) is gone, and the row stays 'running' until a worker or the app reaps it into 'interrupted'; until then
every display says since when the run has not responded.
"""

from __future__ import annotations

import time

from medcot_ui.store import RunStatus
from medcot_ui.units import when


def not_responding(status: str, lease_expires_at: float | None, now: float | None = None) -> bool:
    """A run the store calls running whose lease has expired: its worker stopped heartbeating."""
    return (status == RunStatus.running and lease_expires_at is not None
            and lease_expires_at < (now or time.time()))


def status_text(status: str, cancel_requested: bool = False, lease_expires_at: float | None = None,
                heartbeat_at: float | None = None, now: float | None = None) -> str:
    """'running', 'running (cancelling)', 'not responding since <last heartbeat>', or the finished status."""
    if not_responding(status, lease_expires_at, now):
        return f"not responding since {when(heartbeat_at or lease_expires_at, seconds=True)}"
    if status == RunStatus.running and cancel_requested:
        return "running (cancelling)"
    return RunStatus(status).value
