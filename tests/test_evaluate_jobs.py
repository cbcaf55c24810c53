"""An evaluation is a queued job run by the real worker: it finishes, is stored, survives a `kill -9` of its
process and an app restart mid-way (resuming without regenerating a stored answer), and exports."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
from pathlib import Path

import pytest

from conftest import cli, start_app, wait_for
from medcot_ui.evaluate.create import EvalRequest, EvaluationError, create_evaluation, fewer_note
from medcot_ui.evaluate.records import get_evaluation, items_of
from medcot_ui.store import get_run, run_events


def stored_answers(evaluation_id: int) -> dict[tuple[int, str], tuple[str, float]]:
    """Each stored answer with the seconds it was timed at: a regenerated answer would be timed anew."""
    return {(item.position, side): (getattr(item, f"{side}_text"), getattr(item, f"{side}_seconds"))
            for item in items_of(evaluation_id) for side in ("base", "tuned") if item.generated(side)}


def answers_beyond(evaluation_id: int, count: int) -> dict[tuple[int, str], tuple[str, float]] | None:
    answers = stored_answers(evaluation_id)
    return answers if len(answers) >= count else None


def stop(proc, sig: int) -> None:
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)


def queue(kind: str, run_id: int, n: int, *extra: str, tokens: int = 384) -> int:
    # One answer at a time, long enough that answers are stored over several flushes (a kill lands mid-way).
    out = cli("eval", kind, str(run_id), "-n", str(n), "--batch-size", "1", "--max-new-tokens", str(tokens),
              *extra).stdout
    return int(re.search(r"queued evaluation (\d+)", out).group(1))


def kill_mid_way(evaluation_id: int) -> dict[tuple[int, str], tuple[str, float]]:
    """kill -9 the evaluation's process once it has stored answers; returns what was stored by then."""
    job_id = get_evaluation(evaluation_id).job_id
    wait_for(lambda: answering_this_attempt(evaluation_id, job_id), timeout=240,
             what=f"evaluation {evaluation_id} to store answers")
    os.kill(get_run(job_id).pid, signal.SIGKILL)
    wait_for(lambda: get_run(job_id).status == "interrupted", timeout=60, what="the job to be interrupted")
    return stored_answers(evaluation_id)


def answering_this_attempt(evaluation_id: int, job_id: int) -> bool:
    """The job runs and its current attempt has stored answers of its own."""
    job, counts = get_run(job_id), stored_counts(job_id)
    return (job.status == "running" and len(counts) == job.attempt
            and len(stored_answers(evaluation_id)) >= counts[-1] + 2)


def stored_counts(job_id: int) -> list[int]:
    """For each attempt, how many answers were stored before it started (from the job's events)."""
    return [int(m.group(1)) for e in run_events(job_id, limit=500)
            if (m := re.search(r": (\d+) of \d+ answers stored earlier", e.message))]


def check_finished_without_regenerating(evaluation_id: int, n: int, kept: list[dict]) -> None:
    """It finished with every answer, kept each snapshot taken at an interruption, and each attempt generated only
    what was missing."""
    job_id = get_evaluation(evaluation_id).job_id
    final = stored_answers(evaluation_id)
    assert get_run(job_id).status == "succeeded" and len(final) == 2 * n
    for snapshot in kept:
        assert 0 < len(snapshot) < 2 * n  # it was interrupted mid-way
        assert {key: final[key] for key in snapshot} == snapshot  # and nothing stored was generated again
    counts = stored_counts(job_id)
    assert counts[0] == 0 and counts == sorted(counts) and len(counts) == len(kept) + 1  # one attempt each
    assert f"generated {2 * n - counts[-1]} answers this attempt" in [e.message for e in run_events(job_id, 500)]


def check_exports(evaluation_id: int, n: int) -> None:
    exported_csv = Path(cli("eval", "export", str(evaluation_id), "--format", "csv").stdout.strip())
    with open(exported_csv, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n and rows[0]["tuned_answer"] == (items_of(evaluation_id)[0].tuned_answer or "")
    exported = Path(cli("eval", "export", str(evaluation_id), "--format", "jsonl").stdout.strip())
    lines = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert [line["position"] for line in lines] == list(range(n))
    assert all(line["base_tokens"] is not None and line["tuned_tokens"] is not None for line in lines)


def test_evaluations_survive_a_kill_and_an_app_restart_without_regenerating_and_export(
        demo_run: int, home: Path, processes) -> None:
    app = start_app(processes, home, MEDCOT_AUTO_RESUME="1")
    # Sampled hot, so answers run long: the demo model's greedy answers end within a few dozen tokens, too soon to
    # kill or restart an evaluation mid-way.
    hot = ("--sample", "--temperature", "1.5")
    held_out = queue("held-out", demo_run, 8, *hot)  # 16 answers, then 40: sampled hot they run near the limit
    choice = queue("choice", demo_run, 20, "--source", "demo", *hot, tokens=192)
    # The worker answers one evaluation at a time: the held-out one first. kill -9 it mid-way and resume it; it
    # waits behind the multiple-choice one, which the worker takes next.
    held_out_killed = kill_mid_way(held_out)
    cli("resume", str(get_evaluation(held_out).job_id))
    # Restart the app while the multiple-choice evaluation answers: the new app resumes it by itself.
    choice_job = get_evaluation(choice).job_id
    wait_for(lambda: answering_this_attempt(choice, choice_job), timeout=240,
             what="the multiple-choice evaluation to store answers")
    stop(app.proc, signal.SIGTERM)
    assert get_run(choice_job).status == "interrupted"
    choice_restarted = stored_answers(choice)
    start_app(processes, home, MEDCOT_AUTO_RESUME="1")
    # The held-out evaluation (queued across the restart) finishes first; kill the multiple-choice one mid-way too.
    choice_killed = kill_mid_way(choice)
    cli("resume", str(choice_job))
    wait_for(lambda: get_run(choice_job).status == "succeeded", timeout=300, what="both evaluations to finish")

    check_finished_without_regenerating(held_out, 8, [held_out_killed])
    check_finished_without_regenerating(choice, 20, [choice_restarted, choice_killed])
    shown = cli("eval", "show", str(choice)).stdout
    assert "succeeded, 40/40 answers" in shown and "Accuracy, tuned model (run 1):" in shown
    assert "Research use only" in shown
    assert "Not rated yet." in cli("eval", "show", str(held_out)).stdout
    check_exports(held_out, 8)
    check_exports(choice, 20)
    from medcot_ui.publish.card import build_card, gather

    card = str(build_card(gather(demo_run)))
    assert "multiple-choice accuracy, N = 20 questions" in card and "exact McNemar p =" in card


def test_asking_for_more_questions_than_exist_evaluates_all_of_them_and_says_so(demo_run: int) -> None:
    out = cli("eval", "held-out", str(demo_run)).stdout  # the default N (50); the demo run held out 8
    assert re.search(r"queued evaluation \d+ \(job \d+\): 8 questions from held-out rows of run 1 \(seed 3407\) "
                     r"\(you asked for 50; that is every question there is\)", out), out
    out = cli("eval", "choice", str(demo_run), "--source", "demo").stdout
    assert "24 questions from" in out and "(you asked for 50; that is every question there is)" in out
    exact = create_evaluation(EvalRequest(run_id=demo_run, n=8))
    assert fewer_note(EvalRequest(run_id=demo_run, n=8), exact) == "" and exact.n_items == 8


def test_bad_requests_are_refused_by_name_and_store_nothing(demo_run: int, home: Path, tmp_path: Path) -> None:
    no_answer = tmp_path / "mcq.jsonl"
    no_answer.write_text(json.dumps({"question": "q?", "options": ["x", "y"]}) + "\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match="no answer column 'answer'"):
        create_evaluation(EvalRequest(kind="choice", run_id=demo_run, n=1, source="file", file_path=str(no_answer)))
    with pytest.raises(EvaluationError, match="run 5 does not exist"):
        create_evaluation(EvalRequest(run_id=5, n=1))
    (get_run(demo_run).adapter_dir / "adapter_config.json").unlink()
    with pytest.raises(EvaluationError, match="run 1 saved no adapter .* it cannot be evaluated"):
        create_evaluation(EvalRequest(run_id=demo_run, n=1))
    assert cli("eval", "list").stdout.startswith("no evaluations yet")


def test_a_running_evaluation_counts_as_a_gpu_user_for_compare_but_is_not_listed_as_a_run(demo_run: int,
                                                                                          home: Path) -> None:
    from jobs.queue import claim
    from medcot_ui.compare.gpu_budget import running_training_runs
    from medcot_ui.store import list_runs

    evaluation = create_evaluation(EvalRequest(run_id=demo_run, n=2))
    assert claim("test-worker") == evaluation.job_id
    assert [r.id for r in running_training_runs()] == [evaluation.job_id]  # Compare waits for it like training
    assert [r.id for r in list_runs()] == [demo_run]  # the Runs tab, Compare and Publish list training runs only
