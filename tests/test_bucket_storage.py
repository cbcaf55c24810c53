"""Hosting on a Space with a Storage Bucket: the database works on local disk, snapshots and finished files go to
the mount (here a folder the app only ever writes whole new files to), and a restarted Space with an empty disk
comes back from them and resumes its run."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from jobs import recovery
from jobs.queue import delete_run, request_cancel
from jobs.worker import Worker
from medcot_ui.jobkinds import enqueue
from jobs.snapshot_keeper import SnapshotKeeper
from jobs.train import usable_checkpoint
from medcot_ui.hosting import bucket_files, snapshots, storage_status
from medcot_ui.settings import get_settings
from medcot_ui.store import dispose_engines, get_engine, get_run, run_events
from medcot_ui.training.presets import quick_demo

from conftest import start_app, wait_for

KILLS = 20


@pytest.fixture
def bucket(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    mount = tmp_path / "bucket"
    mount.mkdir()
    monkeypatch.setenv("MEDCOT_BUCKET_DIR", str(mount))
    monkeypatch.setenv("MEDCOT_SNAPSHOT_MINUTES", "0.02")  # while work runs, a snapshot every ~1 s
    return mount


def snapshot_rows(snapshot: snapshots.Snapshot, query: str) -> list[tuple]:
    """Read a snapshot on the mount without writing beside it (immutable: no journal, no lock files)."""
    conn = sqlite3.connect(f"file:{snapshot.database}?mode=ro&immutable=1", uri=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def run_status_in(snapshot: snapshots.Snapshot, run_id: int) -> str | None:
    rows = snapshot_rows(snapshot, f"SELECT status FROM runs WHERE id = {run_id}")
    return rows[0][0] if rows else None


def newest_checkpoint_copy(mount: Path) -> int | None:
    steps = [int(Path(rel).parent.name.split("-")[1]) for copy in bucket_files.copies(mount)
             if copy.group.endswith("/checkpoints") and bucket_files.verifies(copy) for rel in copy.files]
    return max(steps) if steps else None


def add_metric_rows(run_id: int, count: int) -> None:
    """Bulk history, so that a snapshot takes long enough for kills to land inside it."""
    get_engine()
    conn = sqlite3.connect(get_settings().sqlite_path)
    with conn:
        conn.executemany("INSERT INTO metrics (run_id, step, loss, created_at) VALUES (?, ?, ?, ?)",
                         [(run_id, step, 1.0 / (step + 1), time.time()) for step in range(count)])
    conn.close()


def kill_snapshotting_at_random(rng: random.Random) -> None:
    """Fork a process that writes snapshots back to back (as the worker's keeper does) and SIGKILL it at a random
    moment: during the backup, the copy to the mount, the manifest or the pruning of old snapshots. A fork, not a
    fresh interpreter: twenty Python start-ups would cost most of this test's time."""
    keeper = SnapshotKeeper.for_settings(get_settings())
    pid = os.fork()
    if pid == 0:  # the child: snapshots until killed (it never returns into pytest)
        try:
            while True:
                keeper.snapshot()
        finally:
            os._exit(1)
    time.sleep(rng.uniform(0.0, 0.6))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL  # killed, not ended on its own


def test_kill_9_while_snapshotting_never_spoils_the_latest_and_a_fresh_disk_resumes_from_the_last_copied_checkpoint(
        bucket, home, processes, built_demo_model):
    filler = enqueue("train", quick_demo().with_overrides({"name": "history"})).id
    request_cancel(filler)  # a queued run cancelled at once: only its metric rows matter here
    add_metric_rows(filler, 60_000)
    run_id = enqueue("train", quick_demo().with_overrides({"training.max_steps": 2000, "training.save_steps": 5})).id
    worker = processes.worker()
    wait_for(lambda: (newest_checkpoint_copy(bucket) or 0) >= 5, timeout=240)

    rng = random.Random(24)
    for kill in range(KILLS):  # the worker keeps training (and taking its own snapshots) meanwhile
        kill_snapshotting_at_random(rng)
        latest = snapshots.latest(bucket)
        assert latest is not None, f"after kill {kill + 1}: no snapshot verifies"
        assert snapshot_rows(latest, "PRAGMA integrity_check") == [("ok",)], f"after kill {kill + 1}"
        assert snapshot_rows(latest, "SELECT count(*) FROM metrics WHERE run_id = %d" % filler) == [(60_000,)]
    assert len(snapshots.recorded(bucket)) <= snapshots.KEEP + 2  # old ones pruned (others may be mid-write)

    # The Space dies outright (worker and training process): only the mount survives.
    wait_for(lambda: run_status_in(snapshots.latest(bucket), run_id) == "running", timeout=60)
    training_pid = int(next(e.message for e in run_events(run_id) if "process started" in e.message)
                       .rsplit("pid ", 1)[1].rstrip(")"))
    for group in (worker.pid, training_pid):
        os.killpg(group, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{training_pid}").exists() or "zombie" in Path(f"/proc/{training_pid}/status")
             .read_text().lower(), timeout=30)
    copied = newest_checkpoint_copy(bucket)
    empty_the_local_disk(home, built_demo_model)

    # A fresh start: the app's start sequence (restore, then the existing auto-resume), then a new worker.
    assert recovery.restore_from_bucket(get_settings()) is not None
    assert (home / "runs.db").exists() and (home / "runs" / f"run-{run_id}" / f"checkpoint-{copied}").is_dir()
    resumer = recovery.AutoResumer(recovery.record_start())
    resumer.run()  # in this thread: it returns once the dead worker's lease has expired and the run is queued
    assert resumer.resumed == [run_id] and get_run(run_id).status == "queued"
    processes.worker()
    resumed = f"resuming from checkpoint-{copied} (step {copied})"
    wait_for(lambda: any(e.message.startswith(resumed) for e in run_events(run_id)), timeout=240)
    wait_for(lambda: get_run(run_id).last_step > copied, timeout=120)
    request_cancel(run_id)
    wait_for(lambda: get_run(run_id).status == "cancelled", timeout=120)
    # Its adapter, written at the cancel, is kept on the mount too.
    wait_for(lambda: any(c.group == f"runs/run-{run_id}" and f"runs/run-{run_id}/adapter/adapter_config.json"
                         in c.files for c in bucket_files.copies(bucket)), timeout=30)


def empty_the_local_disk(home: Path, demo_model: Path) -> None:
    """A restarted Space: nothing of the old local disk is left but what the app's start rebuilds (the demo model)."""
    dispose_engines()
    shutil.rmtree(home)
    shutil.copytree(demo_model, home / "models" / "demo-tiny-llama")


def test_sigterm_to_the_app_writes_a_final_snapshot_from_which_a_fresh_disk_resumes_the_run(
        bucket, home, processes, built_demo_model, monkeypatch):
    monkeypatch.setenv("MEDCOT_SNAPSHOT_MINUTES", "60")  # no timed snapshot: only state changes and the last one
    run_id = enqueue("train", quick_demo().with_overrides({"training.max_steps": 2000, "training.save_steps": 5})).id
    app = start_app(processes, home, MEDCOT_AUTO_RESUME="1")
    wait_for(lambda: (get_run(run_id).last_step or 0) >= 6, timeout=240)  # past its step-5 checkpoint
    app.proc.send_signal(signal.SIGTERM)  # a Space being restarted or paused
    app.proc.wait(timeout=90)
    assert get_run(run_id).status == "interrupted"
    latest = snapshots.latest(bucket)
    assert run_status_in(latest, run_id) == "interrupted", processes.output(app.proc)[-3000:]
    assert latest.app_state["stopping_at"] is not None  # the app's shutdown note travels with the snapshot
    assert snapshots.read_status(get_settings())["written_at"] == latest.written_at  # what the banner showed

    empty_the_local_disk(home, built_demo_model)
    assert recovery.restore_from_bucket(get_settings()) == latest
    resumer = recovery.AutoResumer(recovery.record_start())
    resumer.run()  # interrupted by the shutdown, so resumed once more, from its copied checkpoint
    assert resumer.resumed == [run_id] and get_run(run_id).status == "queued"
    assert usable_checkpoint(home / "runs" / f"run-{run_id}")[0] is not None  # restored beside it


def test_a_snapshot_never_replaces_the_only_good_copy_and_a_torn_one_is_passed_over(bucket, home):
    get_engine()
    settings = get_settings()
    first = snapshots.take(settings.sqlite_path, bucket)
    # A later snapshot torn mid-copy (its file short of the recorded size) and one whose manifest was cut off.
    torn = snapshots.take(settings.sqlite_path, bucket)
    with open(torn.database, "r+b") as fh:
        fh.truncate(torn.size // 2)
    cut = snapshots.take(settings.sqlite_path, bucket)
    cut.manifest.write_text(cut.manifest.read_text()[:20])
    assert snapshots.latest(bucket) == first
    for _ in range(snapshots.KEEP + 2):  # pruning keeps the newest good ones, and so the latest stays readable
        assert snapshots.latest(bucket) is not None
        newest = snapshots.take(settings.sqlite_path, bucket)
    assert snapshots.latest(bucket) == newest and newest.database.exists()
    assert len(snapshots.recorded(bucket)) == snapshots.KEEP


def test_restore_happens_only_on_an_empty_local_disk(bucket, home):
    enqueue("train", quick_demo())
    settings = get_settings()
    snapshots.take(settings.sqlite_path, bucket)
    assert recovery.restore_from_bucket(settings) is None  # a local database always wins
    dispose_engines()
    for path in home.glob("runs.db*"):
        path.unlink()
    assert recovery.restore_from_bucket(settings) is not None
    assert get_run(1) is not None and get_run(1).name == "quick-demo"


def test_the_banner_and_the_hosting_view_say_which_mode_is_on(bucket, home, monkeypatch):
    get_engine()
    settings = get_settings()
    assert settings.storage_mode == "bucket"
    assert "no snapshot written yet" in storage_status.status(settings).text
    taken = snapshots.take(settings.sqlite_path, bucket)
    snapshots.record_status(settings, taken)
    text = storage_status.status(settings, now=taken.written_at + 125).text
    assert text.startswith("**Storage: bucket snapshots.**") and "(2 min 05 s ago)" in text
    assert "snapshots on the bucket | 1" in storage_status.hosting_view(settings)
    monkeypatch.setenv("MEDCOT_HOME", str(bucket / "medcot"))  # the database on the mount itself: refused
    assert "**Storage is not safe.**" in storage_status.status(get_settings()).text
    monkeypatch.setenv("MEDCOT_DATABASE_URL", "postgresql+psycopg://u@db/medcot")
    assert storage_status.status(get_settings()).mode == "postgresql"
    monkeypatch.setenv("MEDCOT_BUCKET_DIR", str(bucket / "not-mounted"))
    monkeypatch.delenv("MEDCOT_DATABASE_URL")
    monkeypatch.setenv("MEDCOT_HOME", str(home))
    assert "No Storage Bucket is mounted" in storage_status.status(get_settings()).text


def test_a_run_removed_for_good_leaves_nothing_on_the_bucket_for_a_restore_to_bring_back(bucket, home, monkeypatch):
    settings = get_settings()
    kept, removed = enqueue("train", quick_demo()), enqueue("train", quick_demo())
    for run in (kept, removed):
        checkpoint = Path(run.output_dir) / "checkpoint-5"
        checkpoint.mkdir(parents=True)
        (checkpoint / "trainer_state.json").write_text("{}")
        bucket_files.keep_quietly(checkpoint, bucket_files.checkpoint_group(settings.home, checkpoint.parent))
        bucket_files.keep_quietly(Path(run.output_dir), skip_prefix="checkpoint-")
    request_cancel(removed.id)
    delete_run(removed.id)
    monkeypatch.setenv("MEDCOT_UNDO_SECONDS", "0")
    Worker("reaper").reap()  # what the worker does once the undo period is over: purge, then forget the bucket's copies
    assert get_run(removed.id) is None
    groups = {copy.group for copy in bucket_files.copies(bucket)}
    assert groups == {f"runs/run-{kept.id}", f"runs/run-{kept.id}/checkpoints"}


def test_an_accepted_upload_is_kept_on_the_bucket_and_comes_back_on_a_fresh_disk(bucket, home, tmp_path,
                                                                                 built_demo_model):
    from medcot_ui.data.uploads import accept_upload

    upload = tmp_path / "incoming" / "cases.jsonl"
    upload.parent.mkdir()
    upload.write_text('{"Question": "q", "Complex_CoT": "r", "Response": "a"}\n', encoding="utf-8")
    stored = accept_upload(upload).path
    enqueue("train", quick_demo().with_overrides({"data.source": "file", "data.file_path": str(stored)}))
    snapshots.take(get_settings().sqlite_path, bucket)
    empty_the_local_disk(home, built_demo_model)
    assert recovery.restore_from_bucket(get_settings()) is not None
    assert stored.read_text(encoding="utf-8").startswith('{"Question": "q"')  # the queued run can train on it
