"""Deleting a run for good is one DELETE: the database removes every row that belongs to it (foreign keys cascade),
and a database from before the cascade is migrated so that its old rows go the same way."""
from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, func
from sqlmodel import select

from jobs.queue import purge_deleted
from medcot_ui import store
from medcot_ui.evaluate.create import EvalRequest
from medcot_ui.evaluate.tables import EvalItem, EvalRating, Evaluation
from medcot_ui.jobkinds import enqueue
from medcot_ui.store import Comparison, Metric, Publish, Run, RunEvent, RunStatus, write_session
from medcot_ui.training.presets import quick_demo

TABLES = (Run, Metric, RunEvent, Comparison, Publish, Evaluation, EvalItem, EvalRating)


def _finished_run() -> int:
    run = enqueue("train", quick_demo())
    with write_session() as s:
        row = s.get(Run, run.id)
        row.status = RunStatus.succeeded
        s.add(Metric(run_id=run.id, step=1, loss=2.0))
        s.add(Comparison(run_id=run.id, question="q"))
        s.add(Publish(run_id=run.id))
    return run.id


def _evaluation(tuned: int, base: int | None = None) -> int:
    """An evaluation of ``tuned`` (against ``base``) with one item rated once; returns its job's id."""
    with write_session() as s:
        job = enqueue("evaluate", EvalRequest(run_id=tuned, base_run_id=base), parent_id=tuned, session=s)
        evaluation = Evaluation(job_id=job.id, run_id=tuned, base_run_id=base)
        s.add(evaluation)
        s.flush()
        item = EvalItem(evaluation_id=evaluation.id, position=0, question="q")
        s.add(item)
        s.flush()
        s.add(EvalRating(evaluation_id=evaluation.id, item_id=item.id, rater="r", verdict="A", preferred="base"))
    return job.id


def _counts() -> dict[str, int]:
    with store.read_session() as s:
        return {t.__tablename__: s.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def _delete_long_ago(*run_ids: int) -> None:
    with write_session() as s:
        for run_id in run_ids:
            s.get(Run, run_id).deleted_at = time.time() - 3600


def test_purging_a_run_removes_its_rows_its_evaluations_and_their_jobs_and_leaves_other_runs_alone(
        db_url: str) -> None:
    kept, purged = _finished_run(), _finished_run()
    kept_job = _evaluation(kept)
    _evaluation(purged)
    before = _counts()
    _delete_long_ago(purged)
    assert purge_deleted() == [purged]
    after = _counts()
    # The purged run and its evaluation job; everything else of theirs once.
    assert after["runs"] == before["runs"] - 2 and store.get_run(kept_job) is not None
    for table in ("metrics", "comparisons", "publishes", "evaluations", "eval_items", "eval_ratings"):
        assert after[table] == before[table] - 1, table
    with store.read_session() as s:
        assert not s.exec(select(RunEvent).where(RunEvent.run_id == purged)).all()


def test_purging_the_run_an_evaluation_compared_against_removes_that_evaluation(db_url: str) -> None:
    tuned, base = _finished_run(), _finished_run()
    _evaluation(tuned, base)
    _delete_long_ago(base)
    purge_deleted()
    assert _counts()["evaluations"] == 0 and _counts()["eval_ratings"] == 0
    assert store.get_run(tuned) is not None


def test_a_database_from_before_the_cascade_is_migrated_so_its_evaluation_jobs_go_with_their_run(
        home: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    old = create_engine(url)
    with old.begin() as conn:
        command.upgrade(store.alembic_config(conn), "0003")
        conn.exec_driver_sql("INSERT INTO runs (id, name, kind, status, config_json, created_at, attempt, "
                             "cancel_requested, resume, output_dir, last_step, deleted_at) VALUES "
                             "(1, 'tuned', 'train', 'succeeded', '{}', 1, 1, 0, 0, '', 0, 1.0), "
                             "(2, 'job', 'evaluate', 'succeeded', '{}', 1, 1, 0, 0, '', 0, NULL)")
        conn.exec_driver_sql("INSERT INTO evaluations (id, job_id, kind, run_id, source, n_items, max_new_tokens, "
                             "greedy, temperature, batch_size, created_at) VALUES "
                             "(1, 2, 'held_out', 1, 'x', 1, 8, 1, 0.6, 1, 1)")
        conn.exec_driver_sql("INSERT INTO metrics (run_id, step, created_at) VALUES (1, 1, 1)")
    old.dispose()
    monkeypatch.setenv("MEDCOT_DATABASE_URL", url)
    store.dispose_engines()
    assert store.get_run(2).parent_id == 1
    assert purge_deleted() == [1]
    assert _counts() == dict.fromkeys((t.__tablename__ for t in TABLES), 0)
    store.dispose_engines()
