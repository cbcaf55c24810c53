"""The run store: SQLModel tables over SQLite (or any SQLAlchemy URL), the engine, and the queries the UI needs.

SQLite is opened in WAL mode with a busy timeout. Transactions that read then write must start with
``BEGIN IMMEDIATE`` (use :func:`write_session`): a deferred BEGIN that upgrades to a write lock fails with
"database is locked" under contention whatever the busy timeout. Times are Unix seconds (floats) so raw SQL
comparisons work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import Column, Enum, Index, Text, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

from medcot_ui.settings import database_url
from medcot_ui.training.config import ConfigError, RunConfig


# The kind of job the Runs tab lists and everything about tuned runs reads; medcot_ui/jobkinds.py knows every kind.
TRAIN_KIND = "train"
# Jobs whose payload is a RunConfig and whose outcome is an adapter (supervised and GRPO training): the runs.
TRAINING_KINDS = (TRAIN_KIND, "grpo")


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"


ADAPTER_FOLDER = "adapter"  # inside a run's output folder
FINISHED = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled, RunStatus.interrupted)
RESUMABLE = (RunStatus.interrupted, RunStatus.cancelled)


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    # AUTOINCREMENT: a deleted run's id is never handed to a new run (adapters and exports are keyed by it).
    __table_args__ = (Index("ix_runs_status_id", "status", "id"), {"sqlite_autoincrement": True})

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = ""
    kind: str = Field(default=TRAIN_KIND, sa_column_kwargs={"server_default": TRAIN_KIND})
    # Stored as the plain status string (a VARCHAR, no CHECK), read back as the enum.
    status: RunStatus = Field(default=RunStatus.queued,
                              sa_type=Enum(RunStatus, native_enum=False, create_constraint=False, length=None))
    config_json: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float = Field(default_factory=time.time)
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    attempt: int = 0
    worker_id: Optional[str] = None
    pid: Optional[int] = None
    lease_expires_at: Optional[float] = None
    heartbeat_at: Optional[float] = None
    cancel_requested: bool = False
    resume: bool = False  # the next attempt continues from the last checkpoint
    output_dir: str = ""
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    dataset_fingerprint: Optional[str] = None
    versions_json: Optional[str] = Field(default=None, sa_column=Column(Text))
    device: Optional[str] = None
    total_steps: Optional[int] = None
    last_step: int = 0
    last_loss: Optional[float] = None
    # Deleting hides a run at once and keeps its rows and files for settings.undo_seconds, so it can be
    # restored; queue.purge_deleted removes it for good after that.
    deleted_at: Optional[float] = None
    # The run a job was queued for (an evaluation's tuned run): purging that run purges the job with it.
    parent_id: Optional[int] = Field(default=None, foreign_key="runs.id", ondelete="CASCADE")

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def base_model(self) -> str:
        """The model a training run tuned ("" for other kinds of job: their payload names no model)."""
        return self.run_config().model.base_model if self.kind in TRAINING_KINDS else ""

    @property
    def label(self) -> str:
        """How run menus name it."""
        return f"run {self.id} · {self.name or 'unnamed'} · {self.status}"

    @property
    def adapter_dir(self) -> Path:
        """Where training saves the run's LoRA adapter (and its tokenizer)."""
        return Path(self.output_dir) / ADAPTER_FOLDER

    @property
    def has_adapter(self) -> bool:
        return (self.adapter_dir / "adapter_config.json").exists()

    def run_config(self) -> RunConfig:
        """A training run's configuration as stored when it was queued (validated again on reading); other kinds
        of job hold other payloads (``jobkinds.payload_of`` reads any kind's)."""
        if self.kind not in TRAINING_KINDS:
            raise ConfigError([f"run {self.id}: an {self.kind} job has no training configuration"])
        return RunConfig.from_json(self.config_json)


class Metric(SQLModel, table=True):
    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_step", "run_id", "step"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    step: int
    epoch: Optional[float] = None
    loss: Optional[float] = None
    learning_rate: Optional[float] = None
    grad_norm: Optional[float] = None
    tokens_per_s: Optional[float] = None
    seconds_per_step: Optional[float] = None
    gpu_mem_gb: Optional[float] = None
    eval_loss: Optional[float] = None
    # Every other finite number the trainer logged at this step ({"mean_token_accuracy": 0.61, "entropy": 1.9,
    # "num_tokens": 51200.0, ...}): the charts offer them; the columns above stay for the fixed charts' speed.
    extra_json: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: float = Field(default_factory=time.time)


class RunEvent(SQLModel, table=True):
    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run", "run_id", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    ts: float = Field(default_factory=time.time)
    level: str = "info"
    message: str = Field(sa_column=Column(Text, nullable=False))


class Comparison(SQLModel, table=True):
    """One base-vs-tuned comparison from the Compare tab."""

    __tablename__ = "comparisons"

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: Optional[int] = Field(default=None, foreign_key="runs.id", ondelete="CASCADE")
    created_at: float = Field(default_factory=time.time)
    question: str = Field(sa_column=Column(Text, nullable=False))
    settings_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    base_reasoning: str = Field(default="", sa_column=Column(Text))
    base_answer: str = Field(default="", sa_column=Column(Text))
    base_seconds: Optional[float] = None
    base_tokens: Optional[int] = None
    tuned_reasoning: str = Field(default="", sa_column=Column(Text))
    tuned_answer: str = Field(default="", sa_column=Column(Text))
    tuned_seconds: Optional[float] = None
    tuned_tokens: Optional[int] = None
    stopped: bool = False
    preferred: Optional[str] = None  # "base", "tuned", "tie"
    note: Optional[str] = Field(default=None, sa_column=Column(Text))
    # Added by the Compare tab: what exactly was run, how each pane ended, and the held-out reference.
    base_model: Optional[str] = None
    device: Optional[str] = None
    prompt: Optional[str] = Field(default=None, sa_column=Column(Text))
    base_state: Optional[str] = None  # split state: closed / unclosed / none
    tuned_state: Optional[str] = None
    base_finish: Optional[str] = None  # eos / length / stopped
    tuned_finish: Optional[str] = None
    base_first_token_s: Optional[float] = None
    tuned_first_token_s: Optional[float] = None
    reference_reasoning: Optional[str] = Field(default=None, sa_column=Column(Text))
    reference_answer: Optional[str] = Field(default=None, sa_column=Column(Text))


class Publish(SQLModel, table=True):
    """One publish (or local export) of a run's artifacts."""

    __tablename__ = "publishes"

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    created_at: float = Field(default_factory=time.time)
    kind: str = "adapter"  # adapter, merged, gguf
    target: str = ""  # repo id or local folder
    status: str = "pending"  # pending, succeeded, failed
    url: Optional[str] = None
    commit_id: Optional[str] = None
    account: Optional[str] = None
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    # Added for the Publish tab: where it went, how, and when it ended.
    destination: str = "hub"  # hub or local
    private: Optional[bool] = None
    finished_at: Optional[float] = None
    files_json: Optional[str] = Field(default=None, sa_column=Column(Text))  # file names sent or written


# ---- engine --------------------------------------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook emit BEGIN itself, so we can choose IMMEDIATE for writes.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    immediate = conn.get_execution_options().get("immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: settings), created once per process, migrated to the newest schema."""
    url = url or database_url()
    if url not in _ENGINES:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        migrate(engine)
        _ENGINES[url] = engine
    return _ENGINES[url]


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The schema as the first release created it with create_all, before migrations existed.
BASELINE_REVISION = "0001"


def alembic_config(connection: Any = None, script_location: Path = MIGRATIONS_DIR) -> Any:
    """Alembic's config for our migrations, bound to ``connection`` (no alembic.ini: one source of truth)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, script_location: Path = MIGRATIONS_DIR) -> None:
    """Bring the database to the newest schema (creating it when empty) with Alembic.

    All in one transaction that starts with BEGIN IMMEDIATE on SQLite (an advisory lock on PostgreSQL), so the
    app, its worker and the training processes starting at once migrate one after the other, and a failed
    migration leaves the database as it was. A database from before migrations existed has our tables but no
    ``alembic_version``: it is stamped at the baseline first, then upgraded like any other.
    """
    from alembic import command
    from sqlalchemy import inspect

    sqlite = engine.dialect.name == "sqlite"
    with engine.execution_options(immediate=True).connect() as conn:
        # SQLite alters a table by copying it (Alembic's batch mode); with foreign keys enforced, dropping the old
        # copy of a referenced table fails. The pragma is ignored inside a transaction, so it is set on the raw
        # connection before BEGIN, and the keys are checked before COMMIT instead.
        raw = conn.connection.driver_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7860)")
                cfg = alembic_config(conn, script_location)
                tables = set(inspect(conn).get_table_names())
                if "runs" in tables and "alembic_version" not in tables:
                    command.stamp(cfg, BASELINE_REVISION)
                command.upgrade(cfg, "head")
                if raw is not None and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()):
                    raise RuntimeError(f"a migration left rows whose foreign keys point nowhere: {broken[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def dispose_engines() -> None:
    """Close pooled connections (before a process hands over to a child, and in tests)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


@contextmanager
def read_session(url: str | None = None) -> Iterator[Session]:
    with Session(get_engine(url), expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(url: str | None = None) -> Iterator[Session]:
    """A session whose transaction starts with BEGIN IMMEDIATE on SQLite; commits on success."""
    engine = get_engine(url).execution_options(immediate=True)
    with Session(engine, expire_on_commit=False) as session:
        yield session
        session.commit()


# ---- queries the UI and the jobs share ----------------------------------------------------------------

def get_run(run_id: int) -> Run | None:
    with read_session() as s:
        return s.get(Run, run_id)


def live_runs() -> Any:
    """The condition that leaves out deleted runs (waiting for undo or purge) and evaluation jobs (the Evaluate tab
    shows those): every list of runs uses it."""
    return Run.deleted_at.is_(None) & Run.kind.in_(TRAINING_KINDS)


def list_runs(limit: int = 200) -> list[Run]:
    with read_session() as s:
        return list(s.exec(select(Run).where(live_runs()).order_by(Run.id.desc()).limit(limit)))


def deleted_runs(limit: int = 200) -> list[Run]:
    """Deleted runs that can still be restored, most recently deleted first."""
    with read_session() as s:
        return list(s.exec(select(Run).where(Run.deleted_at.is_not(None)).order_by(Run.deleted_at.desc())
                           .limit(limit)))


def run_metrics(run_id: int, after_step: int = -1) -> list[Metric]:
    with read_session() as s:
        q = select(Metric).where(Metric.run_id == run_id, Metric.step > after_step).order_by(Metric.step)
        return list(s.exec(q))


def run_events(run_id: int, limit: int = 200) -> list[RunEvent]:
    with read_session() as s:
        q = select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id.desc()).limit(limit)
        return list(reversed(list(s.exec(q))))


def add_event(run_id: int, message: str, level: str = "info") -> None:
    with write_session() as s:
        s.add(RunEvent(run_id=run_id, message=message, level=level))
