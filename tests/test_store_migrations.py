"""The run database's schema is managed by Alembic: new data directories get the newest schema, databases of the
first release are upgraded in place without losing a run, and processes starting together migrate once."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from conftest import child_env, wait_for
from medcot_ui import store
from medcot_ui.settings import PROJECT_DIR


def head() -> str:
    return ScriptDirectory.from_config(store.alembic_config()).get_current_head()


def version(db: Path | str) -> list[tuple[str]]:
    """The revisions recorded in a database (a SQLite file, or any URL)."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    finally:
        engine.dispose()


def test_a_new_data_directory_gets_the_newest_schema_and_the_migrations_match_the_models(db_url: str) -> None:
    engine = store.get_engine()
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert differences == [], "a model changed without a migration: write its migration with `make migration m=...`"
    assert version(db_url) == [(head(),)]


def test_a_database_of_the_first_release_is_upgraded_in_place_keeping_its_runs(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    # The first release made its tables with create_all (its DDL, frozen), and had no alembic_version table.
    with sqlite3.connect(db) as conn:
        conn.executescript((Path(__file__).parent / "first_release_schema.sql").read_text())
        conn.execute("INSERT INTO runs (name, status, config_json, created_at, attempt, cancel_requested, resume, "
                     "output_dir, last_step) VALUES ('kept', 'succeeded', '{}', 1.0, 1, 0, 0, '/x', 60)")
        conn.execute("INSERT INTO metrics (run_id, step, loss, created_at) VALUES (1, 60, 1.25, 1.0)")

    url = f"sqlite:///{db}"
    store.get_engine(url)
    with store.read_session(url) as s:
        run = s.get(store.Run, 1)
        assert (run.name, run.status, run.last_step, run.deleted_at) == ("kept", "succeeded", 60, None)
        assert [m.loss for m in s.exec(store.select(store.Metric))] == [1.25]
    assert version(db) == [(head(),)]
    store.dispose_engines()


def test_a_migration_that_rebuilds_a_referenced_table_keeps_every_row_and_the_foreign_keys(
        home: Path, tmp_path: Path) -> None:
    """SQLite changes a column by copying the table; with its foreign keys enforced the copy of `runs` (which
    metrics and events point at) could not be dropped. Such a migration, the kind `make migration` writes for a
    changed column, must go through and leave the keys enforced afterwards."""
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.training.presets import quick_demo

    run_id = enqueue("train", quick_demo()).id
    with store.write_session() as s:
        s.add(store.Metric(run_id=run_id, step=1, loss=2.0))
    scripts = tmp_path / "migrations"
    shutil.copytree(store.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_rebuild_runs.py").write_text(
        f"from alembic import op\nimport sqlmodel\nrevision = '9999'\ndown_revision = {head()!r}\n"
        "def upgrade():\n"
        "    with op.batch_alter_table('runs', recreate='always') as batch_op:\n"
        "        batch_op.alter_column('name', existing_type=sqlmodel.AutoString(), nullable=True)\n")
    engine = store.get_engine()
    store.migrate(engine, scripts)
    assert version(home / "runs.db") == [("9999",)]
    assert [m.loss for m in store.run_metrics(run_id)] == [2.0] and store.get_run(run_id).name
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_processes_starting_together_on_an_empty_data_directory_migrate_once_without_errors(
        db_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    # Each process imports everything first, says it is ready, then waits for the same starting signal.
    script = ("import sys, time, pathlib; from medcot_ui.store import get_engine, list_runs; "
              "pathlib.Path(sys.argv[1]).touch(); go = pathlib.Path(sys.argv[2]); "
              "[time.sleep(0.001) for _ in iter(lambda: go.exists(), True)]; get_engine(); print(len(list_runs()))")
    ready = [tmp_path / f"ready-{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(r), str(go)], cwd=PROJECT_DIR, env=child_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in ready]
    wait_for(lambda: all(r.exists() for r in ready), timeout=120, interval=0.05, what="all four to be ready")
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 4
    assert version(db_url) == [(head(),)]
