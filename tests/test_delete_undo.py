"""Delete can be undone: a deleted run leaves every list at once, keeps its rows and files for the undo period,
comes back as it was on restore, and only then is removed for good by the worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import jobs.queue as queue
from medcot_ui.jobkinds import enqueue
from conftest import cli, wait_for
from medcot_ui.compare.comparable import comparable_run, comparable_runs
from medcot_ui.compare.errors import CompareError
from medcot_ui.compare import stored as comparisons
from medcot_ui.publish import export as publish
from medcot_ui.runs import detail as one_run, table as runs_table
from medcot_ui.training.presets import quick_demo
from medcot_ui.settings import get_settings
from medcot_ui.store import Comparison, Run, get_run, list_runs, run_metrics, write_session


def add_comparison(run_id: int) -> int:
    with write_session() as s:
        row = Comparison(run_id=run_id, question="What causes scurvy?", base_answer="b", tuned_answer="t")
        s.add(row)
        s.flush()
        return int(row.id)


def deleted_long_ago(run_id: int, seconds: float = 7200) -> None:
    with write_session() as s:
        s.get(Run, run_id).deleted_at = time.time() - seconds


def test_a_deleted_run_leaves_every_list_keeps_its_files_and_comes_back_as_it_was(demo_run: int) -> None:
    comparison = add_comparison(demo_run)
    folder = Path(get_run(demo_run).output_dir)
    metrics_before = len(run_metrics(demo_run))

    queue.delete_run(demo_run)
    assert list_runs() == [] and runs_table.table_rows() == []
    assert publish.publishable_runs() == [] and comparable_runs() == []
    assert comparisons.list_comparisons() == []
    assert one_run.run_detail(demo_run) is None and one_run.run_signature(demo_run) == ("gone",)
    assert (folder / "adapter" / "adapter_config.json").exists(), "the files wait for the undo period"
    with pytest.raises(queue.QueueError, match="was deleted; restore it first"):
        queue.resume(demo_run)
    with pytest.raises(CompareError, match="deleted"):
        comparable_run(demo_run)
    assert [label for label, _ in one_run.deleted_choices()][0].startswith(f"run {demo_run} ·")

    restored = queue.restore_run(demo_run)
    assert one_run.restored_message(restored).startswith(f"Run {demo_run} (")
    assert [r.id for r in list_runs()] == [demo_run] and get_run(demo_run).status == "succeeded"
    assert [c.id for c in comparisons.list_comparisons()] == [comparison]
    assert len(run_metrics(demo_run)) == metrics_before and one_run.deleted_choices() == []
    with pytest.raises(queue.QueueError, match="is not deleted"):
        queue.restore_run(demo_run)


def test_a_deleted_queued_run_is_never_claimed_and_restoring_it_queues_it_again(db_url: str) -> None:
    run_id = enqueue("train", quick_demo()).id
    queue.delete_run(run_id)
    assert queue.claim("w1") is None
    with pytest.raises(queue.QueueError, match="restore it first"):
        queue.claim_specific(run_id, "w1")
    queue.restore_run(run_id)
    assert queue.claim("w1") == run_id


def test_a_running_run_cannot_be_deleted(db_url: str) -> None:
    run_id = enqueue("train", quick_demo()).id
    queue.claim("w1")
    with pytest.raises(queue.QueueError, match="cancel it before deleting it"):
        queue.delete_run(run_id)
    assert get_run(run_id).deleted_at is None


def test_the_worker_removes_runs_deleted_longer_ago_than_the_undo_period_with_their_files(
        demo_run: int, processes) -> None:  # noqa: ANN001
    recent = enqueue("train", quick_demo()).id
    add_comparison(demo_run)
    old_folder = Path(get_run(demo_run).output_dir)
    exports = get_settings().run_exports_dir(demo_run)
    (exports / "adapter").mkdir(parents=True)
    queue.delete_run(demo_run)
    deleted_long_ago(demo_run)
    queue.delete_run(recent)

    worker = processes.worker("--exit-when-idle")  # purges at start, then finds the queue empty
    worker.wait(timeout=60)
    assert get_run(demo_run) is None and run_metrics(demo_run) == []
    assert not old_folder.exists() and not exports.exists()
    assert f"run {demo_run}: deleted over the undo period ago, removed for good" in processes.output(worker)
    assert get_run(recent).deleted, "a run deleted just now stays restorable"
    assert comparisons.list_comparisons() == [] and comparisons.get_comparison(1) is None
    with pytest.raises(queue.QueueError, match="does not exist"):
        queue.restore_run(demo_run)


def test_delete_and_restore_from_the_command_line(demo_run: int) -> None:
    out = cli("delete", str(demo_run))
    assert "deleted" in out.stdout and "medcot restore" in out.stdout
    assert "no runs yet" in cli("list").stdout
    shown = cli("show", str(demo_run)).stdout
    assert f"medcot restore {demo_run}" in shown
    assert "restored" in cli("restore", str(demo_run)).stdout
    assert wait_for(lambda: "succeeded" in cli("list").stdout, timeout=5, what="the run back in the list")
