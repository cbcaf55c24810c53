"""Jobs by kind: every job goes through the one enqueue, a new kind takes a few lines (tests/toy_job.py), and the
real worker runs it, speaks of it by its kind and reads its payload back typed."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from jobs.worker import Worker
from medcot_ui.evaluate.create import EvalRequest
from medcot_ui.jobkinds import JobKindError, enqueue, payload_of
from medcot_ui.store import Run, get_run, run_events, write_session
from medcot_ui.training.config import ConfigError
from medcot_ui.training.presets import quick_demo
from toy_job import Count

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(home: Path, monkeypatch: pytest.MonkeyPatch) -> Worker:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the job process imports this checkout, tests.toy_job included
    return Worker("toy-worker")


def _messages(job_id: int) -> list[str]:
    return [e.message for e in run_events(job_id)]


def test_a_toy_job_kind_runs_through_the_real_worker_and_is_named_by_its_kind(worker: Worker) -> None:
    job = enqueue("count", Count(to=3))
    assert (job.kind, job.total_steps, Path(job.output_dir).name) == ("count", 3, f"count-{job.id}")
    assert worker.serve(max_runs=1, exit_when_idle=True) == 1
    done = get_run(job.id)
    assert (done.status, done.last_step, done.attempt) == ("succeeded", 3, 1)
    assert "counted to 3 (Count)" in (Path(done.output_dir) / "count.log").read_text()
    messages = _messages(job.id)
    assert messages[0] == "queued: count to 3"
    assert any(m.startswith("counting process started (pid ") for m in messages), messages


def test_a_job_process_that_dies_is_reported_as_its_kind_with_its_exit_code(worker: Worker) -> None:
    job = enqueue("count", Count(to=2, exit_with=5))
    worker.serve(max_runs=1, exit_when_idle=True)
    done = get_run(job.id)
    assert done.status == "failed"
    assert done.error.startswith("The counting process exited with code 5."), done.error


def test_a_person_s_error_in_a_job_fails_it_with_the_message_naming_the_field(worker: Worker) -> None:
    job = enqueue("count", Count(to=5, fail_at=2))
    worker.serve(max_runs=1, exit_when_idle=True)
    done = get_run(job.id)
    assert (done.status, done.error, done.last_step) == ("failed", "fail_at: the count stopped at 2, as asked", 1)


def test_payloads_read_back_typed_and_a_wrong_one_is_refused_naming_the_kind(home: Path) -> None:
    training = enqueue("train", quick_demo())
    assert payload_of(get_run(training.id)) == quick_demo()
    assert get_run(training.id).name == quick_demo().name, "a training run is named as its config"
    assert get_run(enqueue("train", quick_demo().with_overrides({"name": ""})).id).name == f"run-{training.id + 1}"
    evaluation = enqueue("evaluate", EvalRequest(run_id=training.id, n=7), name="evaluate run 1")
    read = payload_of(get_run(evaluation.id))
    assert isinstance(read, EvalRequest) and read.n == 7 and read.run_id == training.id
    with pytest.raises(JobKindError, match="payload: a count job takes a Count, not a RunConfig"):
        enqueue("count", quick_demo())
    with pytest.raises(JobKindError, match="kind: 'ppo' is not a job kind"):
        enqueue("ppo", quick_demo())


def test_an_evaluation_job_is_never_read_as_a_training_config(home: Path) -> None:
    # As 0003 stored it: the EvalRequest's fields as a JSON object.
    with write_session() as s:
        job = Run(kind="evaluate", config_json=json.dumps(asdict(EvalRequest(run_id=1, n=4))))
        s.add(job)
    job = get_run(job.id)
    assert payload_of(job) == EvalRequest(run_id=1, n=4)
    assert job.base_model == ""
    with pytest.raises(ConfigError, match=f"run {job.id}: an evaluate job has no training configuration"):
        job.run_config()


def test_a_stored_payload_that_no_longer_fits_names_the_field(home: Path) -> None:
    with write_session() as s:
        job = Run(kind="count", config_json='{"to": 0}')
        s.add(job)
    with pytest.raises(JobKindError, match="count job payload: to: Input should be greater than or equal to 1"):
        payload_of(get_run(job.id))
