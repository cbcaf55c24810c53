"""``python -m jobs.worker``: claim queued jobs one at a time and run each in its own process (the one its kind
names in medcot_ui/jobkinds.py: training, evaluation, ...).

The worker holds the lease of the job it is running (renewing it on a timer), turns jobs whose lease
expired into ``interrupted`` and removes jobs deleted longer ago than the undo period, at start and on a timer,
and records the outcome when the job's process exits: whatever happens in that process, the worker and the other
jobs carry on.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from jobs.launch import job_command
from jobs.queue import LeaseKeeper, claim, finish, purge_deleted, reap_expired
from jobs.snapshot_keeper import SnapshotKeeper
from medcot_ui.hosting.bucket_files import forget_runs, keep_quietly
from medcot_ui.redact import install as install_redaction
from medcot_ui.settings import PROJECT_DIR, get_settings
from medcot_ui.jobkinds import kind_of
from medcot_ui.store import TRAINING_KINDS, Run, RunStatus, add_event, dispose_engines, get_run
from medcot_ui.textfiles import tail_lines

CANCEL_GRACE_SECONDS = 120.0  # a step that never ends (hung kernel) still gets stopped after this


class Worker:
    def __init__(self, worker_id: str | None = None):
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.settings = get_settings()
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._next_reap = 0.0

    def stop(self) -> None:
        self._stop.set()

    def reap(self) -> None:
        for run_id in reap_expired():
            print(f"[worker {self.worker_id}] run {run_id}: lease expired, marked interrupted", flush=True)
        purged = purge_deleted()
        for run_id in purged:
            print(f"[worker {self.worker_id}] run {run_id}: deleted over the undo period ago, removed for good",
                  flush=True)
        forget_runs(purged, self.settings)
        self._next_reap = time.time() + self.settings.lease_seconds / 2

    def _reap_quietly(self) -> None:
        try:
            self.reap()
        except OperationalError as exc:  # the database is briefly unavailable: the next round retries
            print(f"[worker {self.worker_id}] database error while reaping, retrying: {exc.orig}", flush=True)
            self._next_reap = time.time() + self.settings.lease_seconds / 2

    def serve(self, max_runs: int | None = None, exit_when_idle: bool = False) -> int:
        """Loop until stopped; returns how many jobs this worker ran."""
        done = 0
        self._reap_quietly()  # a database that is briefly unavailable at start must not stop the worker
        while not self._stop.is_set() and (max_runs is None or done < max_runs):
            try:
                if time.time() >= self._next_reap:
                    self.reap()
                run_id = claim(self.worker_id)
            except OperationalError as exc:  # e.g. the disk is full or the database is briefly unavailable
                print(f"[worker {self.worker_id}] database error, retrying: {exc.orig}", flush=True)
                self._stop.wait(max(self.settings.poll_seconds, 2.0))
                continue
            if run_id is None:
                if exit_when_idle:
                    break
                self._stop.wait(self.settings.poll_seconds)
                continue
            try:
                self.run_one(run_id)
            except Exception as exc:  # noqa: BLE001 - one run's trouble must not stop the worker
                print(f"[worker {self.worker_id}] run {run_id}: could not be run: {exc!r}", flush=True)
                finish(run_id, RunStatus.failed, f"The worker could not start this run: {exc}")
            done += 1
        return done

    def run_one(self, run_id: int) -> str:
        run = get_run(run_id)
        child, label, log_path = self._start(run)
        cancel_seen_at: float | None = None
        # What the worker records is its own attempt's outcome: nothing once a newer attempt owns the run.
        record = functools.partial(finish, run_id, attempt=run.attempt)
        with LeaseKeeper(run_id, self.worker_id, child.pid) as keeper:
            while child.poll() is None:
                try:
                    child.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
                if time.time() >= self._next_reap:  # other workers' dead runs and expired deletions, also
                    self._reap_quietly()              # during a job that lasts hours
                if keeper.lost:  # the job was reaped or taken over: its process must not go on
                    self._kill(child)
                    break
                if self._stop.is_set():  # shutting down: stop the process, the job stays resumable
                    self._kill(child)
                    record(RunStatus.interrupted, f"The app was stopped while the {label} process ran. "
                                                  "Resume to continue from the last checkpoint.")
                    break
                try:
                    row = get_run(run_id)
                except OperationalError:  # the database is briefly unavailable: the lease keeper retries too
                    continue
                if row is not None and row.cancel_requested:
                    cancel_seen_at = cancel_seen_at or time.time()
                    if time.time() - cancel_seen_at > CANCEL_GRACE_SECONDS:
                        self._kill(child)
                        record(RunStatus.cancelled, "cancelled; the step did not finish in "
                                                    f"{CANCEL_GRACE_SECONDS:.0f} s, so it was stopped")
        self._child = None
        rc = child.wait()
        if rc < 0:
            record(RunStatus.interrupted, f"The {label} process was killed (signal {-rc}). "
                                          "Resume to continue from the last checkpoint.")
        else:  # a no-op when the process recorded its own outcome
            tail = "\n".join(tail_lines(log_path, 8) or [])
            record(RunStatus.failed, f"The {label} process exited with code {rc}."
                   + (f" Last log lines:\n{tail}" if tail else ""))
        final = get_run(run_id)
        status = final.status if final else "deleted"
        self._keep_outputs(final)
        print(f"[worker {self.worker_id}] run {run_id}: {status}", flush=True)
        return status

    def _keep_outputs(self, run: Run | None) -> None:
        """Bucket storage: a finished run's adapter, config, summary and log to the mount (its checkpoints were
        copied at each save)."""
        if run is not None and run.kind in TRAINING_KINDS and run.status in (RunStatus.succeeded, RunStatus.cancelled):
            keep_quietly(Path(run.output_dir), skip_prefix="checkpoint-", settings=self.settings)

    def _start(self, run: Run) -> tuple[subprocess.Popen[bytes], str, Path]:
        """The job's process (the command its kind names), logging to its folder; returns it, its label, its log."""
        output_dir = Path(run.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        kind = kind_of(run.kind)
        log_path = output_dir / kind.log_name
        env = dict(os.environ, MEDCOT_PARENT_PID=str(os.getpid()), PYTHONUNBUFFERED="1")
        # A fresh interpreter (fork + exec): the child opens its own database connections, never ours.
        dispose_engines()
        with open(log_path, "ab") as log:
            log.write(f"\n=== attempt {run.attempt} by worker {self.worker_id} ===\n".encode())
            log.flush()
            child = subprocess.Popen(job_command(run), cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self._child = child
        add_event(run.id, f"{kind.process} process started (pid {child.pid})")
        return child, kind.process, log_path

    @staticmethod
    def _kill(child: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description=(
        "Train queued runs one at a time on this machine's GPU (or CPU). Safe to run several: each run is "
        "claimed by exactly one worker."))
    parser.add_argument("--max-runs", type=int, help="exit after running this many jobs")
    parser.add_argument("--exit-when-idle", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--worker-id", help="name shown on claimed runs (default host-pid)")
    args = parser.parse_args(argv)
    install_redaction()  # no token reaches the worker's output or the rows it writes
    worker = Worker(args.worker_id)

    def _graceful(signum: int, _frame: object) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _graceful)
    signal.signal(signal.SIGINT, _graceful)
    # A PostgreSQL URL may carry a password: never print it.
    store = make_url(worker.settings.database_url).render_as_string(hide_password=True)
    print(f"[worker {worker.worker_id}] watching {store}", flush=True)
    keeper = SnapshotKeeper.for_settings(worker.settings)
    if keeper is not None:
        print(f"[worker {worker.worker_id}] snapshots of the database go to {worker.settings.bucket_dir}", flush=True)
        keeper.start()
    worker.serve(max_runs=args.max_runs, exit_when_idle=args.exit_when_idle)
    if keeper is not None:  # after serve(): a run stopped by SIGTERM is already marked interrupted
        keeper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
