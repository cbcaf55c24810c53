"""Jobs by kind: the registry (kind -> typed payload, the process that runs it, how it reads) and the one enqueue.

A job is one ``runs`` row whose ``kind`` names a :class:`Kind` and whose ``config_json`` holds the kind's payload
(training: a :class:`RunConfig`; evaluation: an ``EvalRequest``). The queue and the worker know kinds only through
this registry, so adding one (reinforcement learning next) is a payload type, a process module and a
:func:`register` call: no change to the queue, the worker or the tabs (docs/architecture.md, "A new job kind").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session

from medcot_ui.errors import MedcotError
from medcot_ui.settings import get_settings
from medcot_ui.store import Run, RunEvent, write_session

# The built-in kinds, each registered by its own module when first asked for (so importing the registry, as the
# queue does, loads no feature package).
BUILT_IN = {"train": "medcot_ui.training.job", "evaluate": "medcot_ui.evaluate.job", "grpo": "medcot_ui.reinforce.job"}


class JobKindError(MedcotError, ValueError):
    """An unknown job kind, or a payload that does not fit its kind; the message names the kind and the field."""


@dataclass(frozen=True)
class Kind:
    name: str  # stored in runs.kind
    payload: type  # a pydantic model or a (pydantic-validated) dataclass
    module: str  # its process: ``python -m MODULE JOB_ID --attempt=N``
    process: str  # how the worker's messages name it: "training" -> "training process"
    log_name: str  # the process's log file in the job's folder
    folder: str  # the job's folder under settings.runs_dir: FOLDER-ID
    summary: Callable[[Any], str]  # one line about a payload (the "queued" event, the CLI)
    steps: Callable[[Any], int | None] = lambda _payload: None  # total steps known at enqueue (progress bars)
    processes: Callable[[Any], int] = lambda _payload: 1  # > 1: started under a data-parallel launcher
    title: Callable[[Any], str] = lambda _payload: ""  # the name a payload gives its job ("": FOLDER-ID)
    # Reading and writing the payload; the default goes through pydantic both ways.
    read: Callable[[str], Any] | None = None
    write: Callable[[Any], str] | None = None

    def to_json(self, payload: Any) -> str:
        if not isinstance(payload, self.payload):
            raise JobKindError(f"payload: a {self.name} job takes a {self.payload.__name__}, "
                               f"not a {type(payload).__name__}")
        return self.write(payload) if self.write else TypeAdapter(self.payload).dump_json(payload, indent=2).decode()

    def from_json(self, text: str) -> Any:
        if self.read:
            return self.read(text)
        try:
            return TypeAdapter(self.payload).validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "payload"
            raise JobKindError(f"{self.name} job payload: {field}: {first['msg']}") from None


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make ``kind`` known to the queue and the worker (registering a name again replaces it)."""
    _KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> Kind:
    if name not in _KINDS and name in BUILT_IN:
        importlib.import_module(BUILT_IN[name])
    if name not in _KINDS:
        raise JobKindError(f"kind: '{name}' is not a job kind (known: {', '.join(sorted({*BUILT_IN, *_KINDS}))})")
    return _KINDS[name]


def payload_of(run: Run) -> Any:
    """The job's payload, read back as its kind's type."""
    return kind_of(run.kind).from_json(run.config_json)


def enqueue(kind: str, payload: Any, *, name: str = "", dataset_fingerprint: str | None = None,
            total_steps: int | None = None, parent_id: int | None = None, session: Session | None = None) -> Run:
    """Queue a job of ``kind``; returns its row (status 'queued'). ``parent_id``: the run the job is for (purging
    that run purges the job). With ``session``, the job is added in that transaction (so rows that belong to it,
    like an evaluation's questions, are stored with it or not at all)."""
    spec = kind_of(kind)
    if session is None:
        with write_session() as s:
            return enqueue(kind, payload, name=name, dataset_fingerprint=dataset_fingerprint,
                           total_steps=total_steps, parent_id=parent_id, session=s)
    run = Run(name=name or spec.title(payload), kind=spec.name, config_json=spec.to_json(payload), dataset_fingerprint=dataset_fingerprint,
              total_steps=total_steps if total_steps is not None else spec.steps(payload), parent_id=parent_id)
    session.add(run)
    session.flush()
    run.name = run.name or f"{spec.folder}-{run.id}"
    run.output_dir = str(get_settings().runs_dir / f"{spec.folder}-{run.id}")
    session.add(RunEvent(run_id=run.id, message=f"queued: {spec.summary(payload)}"))
    return run
