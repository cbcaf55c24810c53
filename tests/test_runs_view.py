"""What the Runs tab shows, read from a real SQLite run store and real run folders."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import jobs.queue as queue
from medcot_ui.jobkinds import enqueue
from conftest import fake_hf_token
from medcot_ui.runs import charts as run_charts, detail as one_run, table as runs_table
from medcot_ui.training.presets import quick_demo
from medcot_ui.store import Metric, Run, RunStatus, write_session


def _queue(name: str, **overrides):
    return enqueue("train", quick_demo().with_overrides({"name": name, **overrides}))


def _log_metrics(run_id: int, steps: range, **extra) -> None:
    with write_session() as s:
        for step in steps:
            s.add(Metric(run_id=run_id, step=step, loss=5.0 - step * 0.01, learning_rate=1e-3, grad_norm=1.5,
                         tokens_per_s=1000.0 + step, seconds_per_step=2.0, **extra))
        run = s.get(Run, run_id)
        run.last_step, run.last_loss = steps[-1], 5.0 - steps[-1] * 0.01


def test_two_runs_launched_together_queue_and_the_table_says_which_waits_and_why(home):
    first, second = _queue("first"), _queue("second")
    third = _queue("third")
    assert queue.claim("worker-a") == first.id
    rows = {r[0]: dict(zip(runs_table.TABLE_COLUMNS, r)) for r in runs_table.table_rows()}
    assert [r[0] for r in runs_table.table_rows()] == [third.id, second.id, first.id]  # newest first
    assert rows[first.id]["status"] == "running" and rows[first.id]["queue"] == ""
    assert rows[second.id]["queue"] == f"#1 · run {first.id} (first) is training"
    assert rows[third.id]["queue"] == f"#2 · run {first.id} (first) is training, 1 ahead"
    detail = one_run.run_detail(second.id)
    assert (f"Queue position **#1**: waiting: run {first.id} (first) is training (a worker trains one run at a "
            "time).") in detail.header
    assert rows[second.id]["model"] == "demo:tiny-llama" and rows[second.id]["dataset"] == "demo data"
    assert rows[second.id]["steps"] == "0 / 30"


def test_a_run_nobody_picks_up_says_no_worker_is_there(home):
    run = _queue("lonely")
    assert runs_table.table_rows()[0][-1] == "#1 · starting"
    later = time.time() + runs_table.NO_WORKER_AFTER_S + 1
    assert runs_table.table_rows(now=later)[0][-1] == "#1 · no worker has picked it up"
    detail = one_run.run_detail(run.id, now=later)
    assert "Queue position **#1**" in detail.header and "python -m jobs.worker" in detail.header


def test_the_table_shows_loss_steps_and_duration_and_keeps_active_runs_beyond_the_limit(home):
    old = _queue("old-but-queued")
    done = [_queue(f"done-{i}") for i in range(3)]
    for run in done:
        with write_session() as s:
            row = s.get(Run, run.id)
            row.status, row.started_at, row.finished_at = RunStatus.succeeded, 1000.0, 1125.0
            row.last_step, row.total_steps, row.last_loss = 30, 30, 1.23456
    rows = runs_table.table_rows(limit=2)
    assert [r[0] for r in rows] == [done[2].id, done[1].id, old.id]
    assert rows[0][6:9] == ["2 min 05 s", "1.2346", "30 / 30"]


def test_the_polling_signatures_change_only_when_something_shown_changed(home):
    run = _queue("watched")
    sig = runs_table.table_signature()
    assert runs_table.table_signature() == sig
    queue.request_cancel(run.id)
    assert runs_table.table_signature() != sig
    run2 = _queue("second")
    assert queue.claim("w") == run2.id
    msig, rsig, tsig = run_charts.metric_signature(run2.id), one_run.run_signature(run2.id), \
        runs_table.table_signature()
    assert run_charts.metric_signature(run2.id) == msig and one_run.run_signature(run2.id) == rsig
    _log_metrics(run2.id, range(1, 4))
    assert run_charts.metric_signature(run2.id) == (3, 3) != msig
    assert one_run.run_signature(run2.id) != rsig and runs_table.table_signature() != tsig
    queue.finish(run2.id, RunStatus.failed, "boom")
    queue.delete_run(run2.id)
    assert one_run.run_signature(run2.id) == ("gone",)
    assert one_run.run_detail(run2.id) is None


def test_the_table_is_redrawn_as_time_passes_only_while_a_run_is_queued_or_running(home, monkeypatch):
    run = _queue("ticking")
    now = time.time()
    later = lambda: now + 60  # noqa: E731 - a clock a minute ahead
    waiting = runs_table.table_signature()
    monkeypatch.setattr(time, "time", later)
    assert runs_table.table_signature() != waiting, "a queued run's wait grows: redraw"
    queue.request_cancel(run.id)  # a queued run is cancelled at once: nothing is active any more
    done = runs_table.table_signature()
    monkeypatch.setattr(time, "time", lambda: now + 600)
    assert runs_table.table_signature() == done, "nothing active: nothing changes by itself"


def test_charts_have_train_and_eval_loss_and_long_histories_are_thinned_keeping_the_last_step(home):
    run = _queue("charts")
    _log_metrics(run.id, range(1, 5001))
    with write_session() as s:
        s.add(Metric(run_id=run.id, step=5001, eval_loss=2.5))
    frames = run_charts.chart_frames(run_charts.metric_rows(run.id), with_eval=True)
    assert set(frames) == {"loss", "learning_rate", "grad_norm", "tokens_per_s"}
    loss = frames["loss"]
    train = loss[loss.series == "train loss"]
    assert len(train) <= run_charts.CHART_MAX_POINTS + 1 and train.step.iloc[-1] == 5000
    assert loss[loss.series == "eval loss"].to_dict("records") == [{"step": 5001, "value": 2.5,
                                                                   "series": "eval loss"}]
    assert list(frames["tokens_per_s"].columns) == ["step", "value", "series"]
    assert set(frames["learning_rate"].value) == {10.0}  # 1e-3 plotted in units of 1e-4: "10" on the axis


def test_progress_eta_and_performance_come_from_the_logged_steps(home):
    run = _queue("eta")
    assert queue.claim("w") == run.id
    detail = one_run.run_detail(run.id)
    assert detail.progress.text == "starting: loading the model and the data"
    with write_session() as s:
        s.get(Run, run.id).total_steps = 30
    _log_metrics(run.id, range(1, 11), gpu_mem_gb=6.5)
    detail = one_run.run_detail(run.id)
    assert detail.progress.fraction == pytest.approx(10 / 30)
    assert detail.progress.eta_s == pytest.approx(40.0)  # 20 steps left x 2.0 s/step
    assert detail.progress.text == "step 10 of 30 · about 40 s left"
    assert detail.perf.seconds_per_step == 2.0 and detail.perf.peak_gpu_gb == 6.5
    assert detail.perf.tokens_per_s == pytest.approx(1000.0 + 5.5)  # median of the recent steps
    assert "6.5 GiB" in detail.perf.describe("NVIDIA H200") and 'data-fraction="0.3333"' in \
        one_run.progress_html(detail.progress)
    assert detail.can_cancel and not detail.can_resume and not detail.can_delete
    queue.request_cancel(run.id)
    assert one_run.run_detail(run.id).header.count("running (cancelling)") == 1
    queue.finish(run.id, RunStatus.cancelled, "cancelled by the user")
    finished = one_run.run_detail(run.id)
    assert finished.can_resume and finished.can_delete and not finished.can_cancel
    assert finished.progress.text.startswith("cancelled at step 10 of 30 · took")


def test_log_tail_shows_events_and_the_end_of_train_log_without_progress_bars_or_secrets(home):
    run = _queue("logs")
    out = Path(run.output_dir)
    out.mkdir(parents=True)
    bar = "\r 40%|████      | 12/30 [00:04<00:06,  2.9it/s]\r 43%|████▎     | 13/30 [00:04<00:06,  2.9it/s]"
    lines = [f"line {i}" for i in range(500)] + [bar, f"token {fake_hf_token('leaked')} leaked"]
    (out / "train.log").write_text("\n".join(lines) + "\n")
    text = one_run.log_tail(one_run.run_detail(run.id).run, lines=10)
    assert "queued" in text.split("# train.log")[0]
    tail = text.split("# train.log (last lines, progress bars left out)\n")[1].splitlines()
    assert tail[0] == "line 494" and len(tail) == 7 and "12/30" not in text
    assert "hf_abcdefghij" not in text and "[REDACTED]" in text


def test_artifacts_list_the_run_folder_with_what_each_file_is(home):
    run = _queue("files")
    out = Path(run.output_dir)
    (out / "adapter").mkdir(parents=True)
    (out / "adapter" / "adapter_model.safetensors").write_bytes(b"x" * 2048)
    (out / "checkpoint-20").mkdir()
    (out / "train.log").write_text("hello\n")
    items = one_run.artifacts(one_run.run_detail(run.id).run)
    assert items[0] == ("adapter/", "LoRA adapter + tokenizer (what Compare and Publish use)", "2.0 KB")
    assert items[1][0] == "checkpoint-20/" and "resume" in items[1][1]
    assert items[2] == ("train.log", "training log", "6 B")


@pytest.mark.parametrize("error, expected", [
    ("RuntimeError: WandbCallback requires wandb to be installed. Run `pip install wandb`.",
     "wandb package is not installed where training runs"),
    ("The training process exited with code 137. Last log lines:\nKilled", "stopped unexpectedly (exit code 137)"),
    ("TypeError: unsupported operand", "unexpected error (TypeError)"),
    ("The GPU ran out of memory. Lower 'Batch size per device'", "The GPU ran out of memory. Lower"),
])
def test_errors_are_explained_in_plain_words(error, expected):
    text = one_run.explain_error(error)
    assert expected in text
    assert error.splitlines()[0] in text  # the original is kept for whoever needs it


def test_a_running_run_whose_worker_died_is_shown_as_not_responding_in_the_tab_and_the_cli(home):
    from conftest import cli
    from medcot_ui.store import get_run
    from medcot_ui.units import when

    run = _queue("orphaned")
    assert queue.claim("worker-that-dies", lease_seconds=1.0) == run.id
    heartbeat = when(get_run(run.id).heartbeat_at, seconds=True)
    assert runs_table.table_rows()[0][2] == "running"
    signature = one_run.run_signature(run.id)
    time.sleep(1.2)  # the worker is gone: nobody renews the lease, and no worker or app is left to reap the run
    assert get_run(run.id).status == "running"  # the row itself still says so ...
    said = f"not responding since {heartbeat}"  # ... but no display does
    row = dict(zip(runs_table.TABLE_COLUMNS, runs_table.table_rows()[0]))
    assert row["status"] == said
    assert row["duration"] == "0 s", "its clock stopped at the last heartbeat (the claim)"
    assert one_run.run_signature(run.id) != signature, "the Runs tab redraws the header when the lease expires"
    detail = one_run.run_detail(run.id)
    assert f"**{said}**" in detail.header
    assert detail.progress.text.startswith(f"step 0 of 30 · no heartbeat since {heartbeat}")
    assert said in cli("list").stdout
    assert f"status: {said}" in cli("show", str(run.id)).stdout


def test_on_a_phone_each_run_is_one_line_naming_its_status_steps_loss_and_queue_place(home):
    from medcot_ui.runs.compact import compact_choices

    first, second = _queue("first-run"), _queue("second-run")
    assert queue.claim("w") == first.id
    _log_metrics(first.id, range(1, 4))
    labels = {run_id: label for label, run_id in compact_choices(runs_table.table_frame())}
    assert labels[first.id] == f"#{first.id} first-run · running · 3 / 30 steps · loss 4.9700"
    assert labels[second.id].startswith(f"#{second.id} second-run · queued · 0 / ")
    assert "queue #1" in labels[second.id]
