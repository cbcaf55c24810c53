"""A training process left behind by a killed worker writes nothing once a newer attempt owns its run."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from conftest import ROOT, child_env, cli, demo_config_file, wait_for
from jobs import queue
from medcot_ui import jobkinds
from jobs.train import usable_checkpoint
from medcot_ui.store import RunStatus, get_run, run_events, run_metrics


def enqueue_from_cli(tmp_path: Path, **overrides: object) -> int:
    out = cli("enqueue", str(demo_config_file(tmp_path / "demo.yaml", **overrides)))
    return int(out.stdout.split("queued run ")[1].split()[0])


def process_state(pid: int) -> str:
    """'T' stopped, 'Z' zombie, 'gone' when it no longer exists, else what /proc says."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def trainer_of_attempt(run_id: int, attempt: int) -> int | None:
    """The pid of the training process the worker started for ``attempt`` (from the worker's event)."""
    if get_run(run_id).attempt != attempt:
        return None
    started = [int(m.group(1)) for e in run_events(run_id)
               if (m := re.fullmatch(r"training process started \(pid (\d+)\)", e.message))]
    return started[-1] if len(started) == attempt else None


def freeze_between_writes(pid: int, db: Path) -> None:
    """SIGSTOP ``pid`` at a moment it holds no write lock on the SQLite file. Frozen inside a write (its heartbeat
    or metric row, every step) it would keep every other writer waiting, the stale trainer's ownership check too."""
    for _ in range(50):
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: process_state(pid) == "T", timeout=10, what=f"process {pid} frozen")
        try:
            with closing(sqlite3.connect(db, timeout=1.0, isolation_level=None)) as conn:
                conn.execute("BEGIN IMMEDIATE")  # waits out the worker's short lease renewals, not a frozen write
                conn.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # frozen mid-write: let it commit, then try again
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.02)
    raise AssertionError(f"process {pid} was inside a write each of 50 times it was frozen")


def snapshot(run_id: int) -> tuple:
    run = get_run(run_id)
    return (run.attempt, run.status, run.pid, run.device, run.last_step, run.total_steps,
            [(e.id, e.message) for e in run_events(run_id)],
            [(m.step, m.loss, m.created_at) for m in run_metrics(run_id)])


def test_a_trainer_stalled_while_loading_wakes_after_a_newer_attempt_started_and_writes_nothing(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    run_id = enqueue_from_cli(tmp_path, **{"training.max_steps": 40, "training.save_steps": 10, "training.logging_steps": 1})
    # Attempt 1 trains past its step-10 checkpoint, then its training process dies.
    first = processes.worker("--max-runs=1")
    wait_for(lambda: get_run(run_id).last_step >= 12, timeout=120, interval=0.02, what="step 12")
    os.kill(get_run(run_id).pid, signal.SIGKILL)
    wait_for(lambda: get_run(run_id).status == "interrupted", timeout=15, what="attempt 1 interrupted")
    first.wait(timeout=30)
    cli("resume", str(run_id))

    # Attempt 2 stalls while loading its model (as a slow 8B load does), and its worker is killed meanwhile.
    stalling = processes.worker(MEDCOT_FAULT_STOP_WHILE_LOADING="1")
    stale = wait_for(lambda: (pid := trainer_of_attempt(run_id, 2)) and process_state(pid) == "T" and pid,
                     timeout=60, what="attempt 2's trainer stalled while loading")
    os.kill(stalling.pid, signal.SIGKILL)
    time.sleep(3.2)  # its lease (3 s in tests) expires; the next worker reaps it at start

    # Attempt 3 resumes from the checkpoint and trains on; it is frozen between two checkpoints, so that its metric
    # rows after the last checkpoint are exactly what a stale resume would delete.
    processes.worker()
    wait_for(lambda: get_run(run_id).status == "interrupted", timeout=15, what="attempt 2 reaped")
    killed_at = get_run(run_id).last_step
    cli("resume", str(run_id))
    live = wait_for(lambda: trainer_of_attempt(run_id, 3), timeout=30, what="attempt 3 started")
    wait_for(lambda: get_run(run_id).last_step >= killed_at + 2, timeout=120, interval=0.02, what="attempt 3 on")
    freeze_between_writes(live, home / "runs.db")
    before = snapshot(run_id)
    checkpoint_step = int(usable_checkpoint(Path(get_run(run_id).output_dir))[0].name.split("-")[1])
    assert before[-1][-1][0] > checkpoint_step, "attempt 3 has metric rows a stale resume would delete"

    os.kill(stale, signal.SIGCONT)
    wait_for(lambda: process_state(stale) in {"gone", "Z"}, timeout=90, what="the stale trainer to exit")
    assert snapshot(run_id) == before, "the stale trainer wrote into the live attempt"
    log = (Path(get_run(run_id).output_dir) / "train.log").read_text()
    assert f"run {run_id}: attempt 2 no longer owns the run (now attempt 3, running)" in log

    os.kill(live, signal.SIGCONT)
    wait_for(lambda: get_run(run_id).status not in {"running", "queued"}, timeout=120, what="attempt 3 to finish")
    run = get_run(run_id)
    assert (run.status, run.attempt, run.pid) == ("succeeded", 3, live), run.error
    assert [m.step for m in run_metrics(run_id)] == list(range(1, 41)), "every step's row kept, each once"
    loads = [e.message for e in run_events(run_id) if e.message.startswith("model loaded")]
    assert len(loads) == 2, "only attempts 1 and 3 loaded a model into the run"


def lose_to_a_newer_attempt(run_id: int) -> None:
    """Attempt 1's worker dies (its lease runs out), the run is reaped, resumed and claimed as attempt 2."""
    time.sleep(0.05)
    assert queue.reap_expired() == [run_id]
    queue.resume(run_id)
    assert queue.claim("live-worker") == run_id


def test_each_write_of_an_attempt_that_lost_its_run_is_refused_whole(db_url: str, home: Path) -> None:
    from jobs.attempt import Attempt, StaleAttempt
    from jobs.callbacks import drop_metrics_after
    from medcot_ui.store import Metric, write_session
    from medcot_ui.training.presets import quick_demo

    run_id = jobkinds.enqueue("train", quick_demo()).id
    assert queue.claim("dying-worker", lease_seconds=0.01) == run_id
    old = Attempt(run_id, 1)
    old.event("model loaded")
    assert old.heartbeat(3) is False
    with write_session() as s:
        s.add_all(Metric(run_id=run_id, step=step, loss=1.0) for step in range(1, 6))
    lose_to_a_newer_attempt(run_id)
    before = snapshot(run_id)
    for write in (lambda: old.event("model loaded"), lambda: old.heartbeat(4), lambda: drop_metrics_after(old, 2)):
        with pytest.raises(StaleAttempt, match=f"run {run_id}: attempt 1 no longer owns the run"):
            write()
    assert queue.finish(run_id, RunStatus.succeeded, attempt=1) is False
    assert snapshot(run_id) == before
    assert drop_metrics_after(Attempt(run_id, 2), 2) == 3  # the owner's own resume still works


def test_a_trainer_started_for_an_attempt_that_lost_its_run_exits_before_loading_the_model(
        db_url: str, home: Path) -> None:
    from medcot_ui.training.presets import quick_demo

    run_id = jobkinds.enqueue("train", quick_demo()).id
    assert queue.claim("gone-worker", lease_seconds=0.01) == run_id  # attempt 1, whose worker died
    lose_to_a_newer_attempt(run_id)
    before = snapshot(run_id)
    proc = subprocess.run([sys.executable, "-m", "jobs.train", str(run_id), "--attempt=1"], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"run {run_id}: attempt 1 no longer owns the run (now attempt 2, running)" in proc.stdout
    assert snapshot(run_id) == before
    assert not Path(get_run(run_id).output_dir).exists() or not any(Path(get_run(run_id).output_dir).iterdir())
