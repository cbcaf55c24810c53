"""``python tests/claim_loop.py WORKER_ID GO_FILE``: claim queued runs as fast as it can once GO_FILE exists.

The claim-race test starts several at once: each prints ``ready`` once connected to the store, waits for GO_FILE (so
that all of them start claiming within the same millisecond), then claims through the real ``jobs.queue.claim``
until the queue is empty and prints the ids it got, one per line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from jobs.queue import claim
from medcot_ui.store import get_engine


def main(worker_id: str, go: Path) -> None:
    # Connect (and check the schema) before saying ready: a claimer still opening the store when the others start
    # would find the queue already empty.
    get_engine()
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    claimed = []
    while (run_id := claim(worker_id)) is not None:
        claimed.append(run_id)
    print("\n".join(f"claimed {run_id}" for run_id in claimed), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
