"""The backbone end to end: CLI -> queue -> real worker process -> real training process -> SQLite."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import ROOT, cli, demo_config_file, wait_for
from jobs import queue
from medcot_ui import jobkinds
from medcot_ui.training.presets import quick_demo
from medcot_ui.store import get_run, list_runs, run_events, run_metrics


def enqueue_from_cli(tmp_path: Path, name: str = "demo", **overrides: object) -> int:
    out = cli("enqueue", str(demo_config_file(tmp_path / f"{name}.yaml", name=name, **overrides)))
    return int(out.stdout.split("queued run ")[1].split()[0])


def status(run_id: int) -> str:
    return get_run(run_id).status


def test_a_demo_run_enqueued_from_the_cli_trains_in_the_background_and_its_adapter_loads(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    started = time.monotonic()
    run_id = enqueue_from_cli(tmp_path)
    assert status(run_id) == "queued"
    processes.worker()
    wait_for(lambda: status(run_id) in {"succeeded", "failed"}, timeout=110, what="the run to finish")
    assert time.monotonic() - started < 120
    run = get_run(run_id)
    assert run.status == "succeeded", run.error
    assert run.attempt == 1 and run.device.startswith("CPU") and run.dataset_fingerprint
    # logging_steps=1 in the demo preset: one metrics row for every step, in order, all with a loss
    steps = [m.step for m in run_metrics(run_id)]
    assert steps == list(range(1, 31))
    assert all(m.loss is not None and m.learning_rate is not None for m in run_metrics(run_id))
    assert all(m.eval_loss is None for m in run_metrics(run_id)), "evaluation is off in the demo preset"
    out = Path(run.output_dir)
    assert {"adapter", "config.yaml", "summary.json", "train.log"} <= {p.name for p in out.iterdir()}

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(home / "models" / "demo-tiny-llama")
    tuned = PeftModel.from_pretrained(base, out / "adapter")
    assert sum(p.numel() for n, p in tuned.named_parameters() if "lora_" in n) > 0
    shown = cli("show", str(run_id)).stdout
    assert "status: succeeded" in shown and "steps: 30/30" in shown


@pytest.mark.parametrize("killed_at, damaged", [(27, None), (47, "checkpoint-40")],
                         ids=["after-its-first-checkpoint", "with-its-latest-checkpoint-cut-short"])
def test_a_killed_training_process_leaves_the_run_interrupted_and_resume_continues_from_its_checkpoint(
        home: Path, tmp_path: Path, processes, killed_at: int, damaged: str | None) -> None:  # noqa: ANN001
    run_id = enqueue_from_cli(tmp_path, **{"training.max_steps": 60, "training.save_steps": 20,
                                  "training.logging_steps": 5})
    processes.worker()
    wait_for(lambda: (get_run(run_id).last_step or 0) >= killed_at, timeout=150, interval=0.02,
             what=f"step {killed_at}")
    os.kill(get_run(run_id).pid, signal.SIGKILL)
    if damaged:  # as a kill in the middle of saving leaves it
        state = Path(get_run(run_id).output_dir) / damaged / "trainer_state.json"
        state.write_bytes(state.read_bytes()[:200])
    wait_for(lambda: status(run_id) == "interrupted", timeout=3 + 2, what="interrupted within the lease")
    assert "killed" in get_run(run_id).error
    steps_before = [m.step for m in run_metrics(run_id)]
    assert steps_before[-1] >= 25

    cli("resume", str(run_id))
    wait_for(lambda: status(run_id) in {"succeeded", "failed"}, timeout=120, what="the resumed run to finish")
    run = get_run(run_id)
    assert run.status == "succeeded", run.error
    assert run.attempt == 2
    resumed = [e.message for e in run_events(run_id) if e.message.startswith("resuming from")]
    assert resumed and resumed[0].startswith("resuming from checkpoint-20 (step 20)")
    if damaged:
        said = [e.message for e in run_events(run_id) if e.message.startswith(f"{damaged} is damaged")]
        assert said and said[0].endswith(": resuming from checkpoint-20 instead"), said
        assert "cut short or not JSON" in said[0]
        assert f"{damaged} is damaged" in (Path(run.output_dir) / "train.log").read_text()
    # The global step went on from 20: every logging step appears exactly once, none restarted from 0.
    assert [m.step for m in run_metrics(run_id)] == list(range(5, 61, 5))


def test_a_killed_worker_leaves_the_run_interrupted_and_another_worker_resumes_it(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    run_id = enqueue_from_cli(tmp_path, **{"training.max_steps": 60, "training.save_steps": 20,
                                  "training.logging_steps": 5})
    first = processes.worker()
    wait_for(lambda: (get_run(run_id).last_step or 0) >= 25, timeout=90, interval=0.02, what="step 25")
    train_pid = get_run(run_id).pid
    os.kill(first.pid, signal.SIGKILL)
    # The orphaned training process notices its worker is gone and stops by itself.
    wait_for(lambda: not Path(f"/proc/{train_pid}").exists() or _is_zombie(train_pid), timeout=15,
             what="the orphaned training process to stop")
    # A new worker reaps the expired lease at start (lease = 3 s in tests).
    time.sleep(3.2)
    processes.worker()
    wait_for(lambda: status(run_id) == "interrupted", timeout=10, what="the reaper to mark it interrupted")
    cli("resume", str(run_id))
    wait_for(lambda: status(run_id) in {"succeeded", "failed"}, timeout=120, what="the resumed run to finish")
    assert get_run(run_id).status == "succeeded"
    assert [m.step for m in run_metrics(run_id)] == list(range(5, 61, 5))


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_claimers_starting_at_the_same_moment_claim_each_run_exactly_once(
        db_url: str, home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    # The claim race itself, without training in between: four processes released by one file claim 120 runs in
    # tight loops, so every claim meets the others' (about 30 contested rounds each). A claim that read and then
    # wrote without the lock (or SKIP LOCKED) hands some run to two of them within the first few rounds.
    ids = [jobkinds.enqueue("train", quick_demo()).id for _ in range(120)]
    go = tmp_path / "go"
    claimers = [processes.start(str(ROOT / "tests" / "claim_loop.py"), f"c{i}", str(go), name="claimer")
                for i in range(4)]
    wait_for(lambda: all(processes.output(c).startswith("ready") for c in claimers), timeout=60,
             what="the claimers to be ready")
    go.touch()
    for c in claimers:
        assert c.wait(timeout=120) == 0, processes.output(c)
    got = {f"c{i}": [int(n) for n in re.findall(r"claimed (\d+)", processes.output(c))]
           for i, c in enumerate(claimers)}
    assert sorted(n for claimed in got.values() for n in claimed) == ids, "each run is claimed exactly once"
    assert sum(bool(claimed) for claimed in got.values()) > 1, f"the claimers did not race: {got}"
    owner = {n: worker for worker, claimed in got.items() for n in claimed}
    assert {r.id: (r.worker_id, r.attempt) for r in list_runs()} == {n: (w, 1) for n, w in owner.items()}


def test_on_postgresql_a_claim_passes_over_a_run_another_worker_is_claiming(
        home: Path, postgres_server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    # Without SKIP LOCKED every claimer would queue behind the row lock of the oldest run instead of taking the
    # next one at once (claims stay unique either way: the race test above cannot tell the difference).
    import threading

    from sqlalchemy import text

    from medcot_ui.store import dispose_engines, get_engine

    monkeypatch.setenv("MEDCOT_DATABASE_URL", postgres_server.new_database())
    dispose_engines()
    first, second = (jobkinds.enqueue("train", quick_demo()).id for _ in range(2))
    got: list[int | None] = []
    with get_engine().connect() as other:
        other.execute(text("SELECT id FROM runs WHERE id = :id FOR UPDATE"), {"id": first})  # a claim in flight
        claimer = threading.Thread(target=lambda: got.append(queue.claim("w2")), daemon=True)
        claimer.start()
        claimer.join(timeout=10)
        assert got == [second], "the claim waited for the locked run instead of taking the next one"
        other.rollback()
    assert queue.claim("w1") == first


def test_four_workers_training_side_by_side_each_train_their_own_runs_without_database_locked_errors(
        db_url: str, home: Path, processes) -> None:  # noqa: ANN001
    # Four real workers and their training processes writing to one store at once (claims, leases, heartbeats,
    # metrics): four runs for four workers, so they train side by side, and their last claims find the queue empty.
    # The race of the claim itself is the test above; the CLI's enqueue has tests of its own.
    config = quick_demo().with_overrides({"training.max_steps": 1, "data.eval_size": 0})
    ids = [jobkinds.enqueue("train", config).id for _ in range(4)]
    workers = [processes.worker("--exit-when-idle", f"--worker-id=w{i}") for i in range(4)]
    for w in workers:
        w.wait(timeout=280)
    rows = sorted(list_runs(), key=lambda r: r.id)
    assert [r.id for r in rows] == ids
    assert all(r.status == "succeeded" and r.attempt == 1 for r in rows), [(r.id, r.status, r.error) for r in rows]
    claims = [e.run_id for i in ids for e in run_events(i) if e.message.startswith("claimed by worker ")]
    assert sorted(claims) == ids, "each run is claimed exactly once"
    assert len({r.worker_id for r in rows}) > 1, "the work should be spread over several workers"
    logs = "".join(processes.output(w) for w in workers)
    logs += "".join((home / "runs" / f"run-{i}" / "train.log").read_text() for i in ids)
    assert "database is locked" not in logs and "Traceback" not in logs
    password = make_url(db_url).password
    assert password is None or password not in logs, "a database password reached a log"


def test_cancel_mid_run_stops_at_the_next_step_saves_the_adapter_and_ends_cancelled(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    run_id = enqueue_from_cli(tmp_path, **{"training.max_steps": 2000, "training.logging_steps": 10})
    processes.worker()
    wait_for(lambda: (get_run(run_id).last_step or 0) >= 15, timeout=90, interval=0.05, what="step 15")
    said = cli("cancel", str(run_id)).stdout
    assert said == f"run {run_id}: stopping at its next step; it saves its adapter and becomes cancelled " \
                   f"(`medcot show {run_id}` to follow it)\n"
    wait_for(lambda: status(run_id) != "running", timeout=60, what="the run to stop")
    run = get_run(run_id)
    assert run.status == "cancelled"
    assert run.last_step < 2000
    out = Path(run.output_dir)
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert (out / f"checkpoint-{run.last_step}").exists(), "the cancel step is checkpointed so resume can go on"


def test_a_non_finite_loss_fails_the_run_naming_the_step(home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    run_id = enqueue_from_cli(tmp_path)
    processes.worker(MEDCOT_FAULT_NAN_AT_STEP="7")
    wait_for(lambda: status(run_id) in {"succeeded", "failed"}, timeout=90, what="the run to finish")
    run = get_run(run_id)
    assert run.status == "failed"
    assert "non-finite (nan) at step 8" in run.error


def test_a_crashing_run_fails_alone_and_the_worker_goes_on_to_the_next_run(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    missing = enqueue_from_cli(tmp_path, name="broken", **{"data.source": "file", "data.file_path": str(tmp_path / "nope.jsonl")})
    good = enqueue_from_cli(tmp_path, name="good", **{"training.max_steps": 3})
    processes.worker()
    wait_for(lambda: status(good) in {"succeeded", "failed"}, timeout=120, what="the second run")
    assert status(missing) == "failed" and "nope.jsonl' does not exist" in get_run(missing).error
    assert status(good) == "succeeded"


def test_an_offline_hub_model_fails_with_a_message_naming_the_demo_model(home: Path, tmp_path: Path) -> None:
    out = cli("train", str(demo_config_file(tmp_path / "hub.yaml", **{"model.base_model": "unsloth/not-here"})),
              check=False)
    assert out.returncode == 1
    run = get_run(1)
    assert run.status == "failed"
    assert "Hugging Face Hub" in run.error and "demo:tiny-llama" in run.error


def test_queueing_a_run_from_the_cli_does_not_import_the_training_libraries(home: Path, tmp_path: Path) -> None:
    # Importing torch takes seconds; the CLI's queue commands and the worker need none of it (training runs in
    # its own process), so `medcot enqueue` answers in about a second.
    out = cli("enqueue", str(demo_config_file(tmp_path / "demo.yaml")), PYTHONPROFILEIMPORTTIME="1")
    imported = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "medcot_ui.jobkinds" in imported and not imported & {"torch", "transformers", "trl", "peft"}


def test_an_invalid_config_is_refused_naming_the_field_and_nothing_is_enqueued(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora:\n  r: 0\ntraining:\n  learning_rate: 5\n")
    out = cli("enqueue", str(bad), check=False)
    assert out.returncode == 2
    assert "lora.r: Input should be greater than or equal to 1 (allowed: >= 1 and <= 256)" in out.stderr
    assert "training.learning_rate" in out.stderr
    assert "no runs yet" in cli("list").stdout


def test_cancelling_a_queued_run_says_it_was_cancelled_before_it_started(home: Path, tmp_path: Path) -> None:
    run_id = enqueue_from_cli(tmp_path)
    said = cli("cancel", str(run_id)).stdout
    assert said == f"run {run_id}: cancelled before it started (`medcot resume {run_id}` queues it again)\n"
    assert status(run_id) == "cancelled"
    assert "queued again" in cli("resume", str(run_id)).stdout and status(run_id) == "queued"


@pytest.mark.parametrize(("setting", "refusal"), [
    ("training.max_steps=true", "training.max_steps: must be a number, not true"),
    ("training.learning_rate=.nan", "training.learning_rate: must be a number, not nan"),
    ("lora.dropout=false", "lora.dropout: must be a number, not false")])
def test_a_yes_no_or_nan_given_for_a_number_is_refused_naming_the_field(home: Path, setting: str,
                                                                        refusal: str) -> None:
    out = cli("enqueue", "--set", setting, check=False)
    assert out.returncode == 2 and refusal in out.stderr
    assert "no runs yet" in cli("list").stdout


def test_a_broken_json_config_names_the_place_once(home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "unfinished')
    out = cli("enqueue", str(broken), check=False)
    assert out.returncode == 2
    assert "JSON: Unterminated string starting at line 1, column 10" in out.stderr and "at at" not in out.stderr


@pytest.mark.parametrize("action", ["cancel", "resume", "delete"])
def test_actions_on_a_missing_run_say_so_plainly(home: Path, action: str) -> None:
    out = cli(action, "42", check=False)
    assert out.returncode == 2 and "run 42 does not exist" in out.stderr and "Traceback" not in out.stderr


def test_training_directly_from_a_config_file_records_the_run_like_any_other(home: Path, tmp_path: Path) -> None:
    out = cli("train", str(demo_config_file(tmp_path / "direct.yaml", **{"training.max_steps": 4})))
    assert "run 1: succeeded" in out.stdout
    assert [m.step for m in run_metrics(1)] == [1, 2, 3, 4]
    assert get_run(1).worker_id.startswith("cli-")


def test_a_run_the_worker_cannot_even_start_fails_alone_and_the_worker_goes_on(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    blocked = enqueue_from_cli(tmp_path, name="blocked", **{"training.max_steps": 3})
    good = enqueue_from_cli(tmp_path, name="good", **{"training.max_steps": 3})
    # Something already sits where the run's folder must go: the worker cannot prepare that run.
    (home / "runs").mkdir(parents=True, exist_ok=True)
    Path(get_run(blocked).output_dir).write_text("not a folder")
    worker = processes.worker()
    wait_for(lambda: status(good) in {"succeeded", "failed"}, timeout=120, what="the second run")
    assert status(blocked) == "failed" and "could not start this run" in get_run(blocked).error
    assert status(good) == "succeeded"
    assert worker.poll() is None, "the worker is still serving"
