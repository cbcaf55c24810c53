"""Restarts: a run the restart interrupted is resumed once from its last checkpoint (MEDCOT_AUTO_RESUME), old or
deliberate stops are left alone, and a run that keeps dying without progress waits for a person."""

from __future__ import annotations

import os
import re
import signal
import time

from jobs import recovery
from medcot_ui.jobkinds import enqueue
from medcot_ui.training.presets import quick_demo
from medcot_ui.store import Run, get_run, run_events, write_session

from conftest import cli, demo_config_file, start_app, wait_for


def make_run(status: str, last_step: int = 10, finished_at: float | None = None, lease_expired: bool = True) -> int:
    run_id = enqueue("train", quick_demo()).id
    with write_session() as s:
        row = s.get(Run, run_id)
        row.status, row.last_step, row.finished_at = status, last_step, finished_at
        row.worker_id, row.lease_expires_at = "gone-worker", time.time() - 1 if lease_expired else time.time() + 60
    return run_id


def training_pid(run_id: int) -> int:
    started = [e.message for e in run_events(run_id) if e.message.startswith("training process started")]
    return int(re.search(r"pid (\d+)", started[-1]).group(1))


def resumer(previous: dict) -> recovery.AutoResumer:
    thread = recovery.AutoResumer(previous)
    thread.run()  # in this thread: it returns once nothing it waits for is still running
    return thread


# The resumer's queries are the same on both stores: only the tests that take PostgreSQL's row locks (reap and
# resume here, and the restart of a real app below) run on it too (`db_url`); the others use the SQLite `home`.
def test_a_run_still_running_when_the_app_died_is_reaped_and_resumed(db_url):
    run_id = make_run("running", last_step=12)
    done = resumer({})
    assert done.resumed == [run_id]
    run = get_run(run_id)
    assert run.status == "queued" and run.resume
    assert any(e.message == f"{recovery.AUTO_RESUME_EVENT} 12" for e in run_events(run_id))


def test_only_runs_interrupted_by_the_shutdown_are_resumed(home):
    stopping_at = time.time() - 60
    by_shutdown = make_run("interrupted", finished_at=stopping_at + 1)
    just_before = make_run("interrupted", finished_at=stopping_at - 5)  # the worker got the signal first
    long_ago = make_run("interrupted", finished_at=stopping_at - 3600)
    cancelled = make_run("cancelled", finished_at=stopping_at + 1)
    done = resumer({"started_at": stopping_at - 7200, "stopping_at": stopping_at})
    assert sorted(done.resumed) == sorted([by_shutdown, just_before])
    assert get_run(long_ago).status == "interrupted" and get_run(cancelled).status == "cancelled"


def test_a_run_interrupted_again_without_progress_waits_for_a_person(home):
    run_id = make_run("running", last_step=10)
    recovery.add_event(run_id, f"{recovery.AUTO_RESUME_EVENT} 10")
    done = resumer({})
    assert done.resumed == []
    assert get_run(run_id).status == "interrupted"
    assert "press Resume" in run_events(run_id)[-1].message


def test_a_run_that_got_further_since_its_last_automatic_resume_is_resumed_again(home):
    run_id = make_run("running", last_step=20)
    recovery.add_event(run_id, f"{recovery.AUTO_RESUME_EVENT} 10")
    assert resumer({}).resumed == [run_id]


def test_a_run_whose_worker_still_heartbeats_is_left_running(home, monkeypatch):
    monkeypatch.setenv("MEDCOT_LEASE_SECONDS", "0.5")
    run_id = make_run("running", lease_expired=False)  # its lease runs 60 s: another live worker holds it
    started = time.monotonic()
    assert resumer({}).resumed == []
    assert get_run(run_id).status == "running" and time.monotonic() - started < 10


def test_the_app_notes_its_start_and_its_shutdown(home):
    assert recovery.record_start() == {}
    recovery.record_stopping()
    state = recovery.record_start()
    assert state["started_at"] <= state["stopping_at"] <= time.time()


def test_a_restart_mid_training_leaves_the_run_interrupted_and_the_app_resumes_it_from_its_checkpoint(
        db_url, home, processes, tmp_path):
    config = demo_config_file(tmp_path / "demo.yaml", **{"training.max_steps": 12, "training.save_steps": 5,
                                                        "name": "restart-me"})
    cli("enqueue", str(config))
    app = start_app(processes, home, MEDCOT_AUTO_RESUME="1")
    wait_for(lambda: (r := get_run(1)) is not None and r.last_step >= 6, timeout=240, interval=0.02,
             what="the run to pass its step-5 checkpoint")
    # Freeze the trainer mid-run: on a fast machine the remaining steps could otherwise finish before the
    # restart reaches the worker, and the run would rightly succeed instead of being interrupted.
    os.kill(training_pid(1), signal.SIGSTOP)
    app.proc.send_signal(signal.SIGTERM)  # what a Space restart (or `docker stop`) sends the app
    app.proc.wait(timeout=60)
    interrupted = get_run(1)
    assert interrupted.status == "interrupted", (interrupted.status, interrupted.error)
    start_app(processes, home, MEDCOT_AUTO_RESUME="1")
    wait_for(lambda: get_run(1).status not in {"interrupted", "queued", "running"}, timeout=300,
             what="the resumed run to finish")
    run = get_run(1)
    messages = [e.message for e in run_events(1)]
    assert run.status == "succeeded", (run.error, messages[-5:])
    assert run.attempt == 2 and run.last_step == 12
    assert any(m.startswith(recovery.AUTO_RESUME_EVENT) for m in messages)
    assert any(m.startswith("resuming from checkpoint-") for m in messages), messages
