"""An evaluation stops when it should: Cancel ends it within seconds with its answers kept, and an evaluation
whose worker was killed stops by itself at once, its last log line saying exactly what it stored."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from conftest import ROOT, cli, wait_for
from medcot_ui.evaluate.records import get_evaluation, items_of
from medcot_ui.store import get_run, run_events


def stored(evaluation_id: int) -> int:
    return sum(item.generated(side) for item in items_of(evaluation_id) for side in ("base", "tuned"))


QUESTIONS = 40  # 80 answers, one at a time: far more than a worker answers in the seconds a stop may take


def queue_slow_evaluation(run_id: int) -> tuple[int, int]:
    """An evaluation of the demo data's questions answered one at a time with long answers: it runs for a while."""
    out = cli("eval", "held-out", str(run_id), "-n", str(QUESTIONS), "--batch-size", "1", "--max-new-tokens", "512",
              "--file", str(ROOT / "data" / "demo" / "medical_demo.jsonl")).stdout
    evaluation_id = int(re.search(r"queued evaluation (\d+)", out).group(1))
    return evaluation_id, get_evaluation(evaluation_id).job_id


def answering(evaluation_id: int, job_id: int) -> bool:
    return get_run(job_id).status == "running" and stored(evaluation_id) >= 2


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its re-parented init) is gone for our purpose.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "Z"
    return state != "Z"


def test_cancel_stops_a_running_evaluation_within_five_seconds_and_keeps_its_answers(demo_run: int, home: Path,
                                                                                     processes) -> None:
    evaluation_id, job_id = queue_slow_evaluation(demo_run)
    processes.worker()
    wait_for(lambda: answering(evaluation_id, job_id), timeout=240, what="the evaluation to store answers")
    asked = time.monotonic()
    cli("cancel", str(job_id))
    wait_for(lambda: get_run(job_id).status == "cancelled", timeout=60, what="the evaluation to be cancelled")
    took = time.monotonic() - asked

    job = get_run(job_id)
    assert took < 5, f"Cancel took {took:.1f} s"
    assert job.error == "cancelled; the answers stored so far are kept (resume to finish)"  # the job's own words
    assert 2 <= stored(evaluation_id) < 2 * QUESTIONS


def test_an_evaluation_whose_worker_is_killed_stops_within_seconds_and_says_what_it_stored(
        demo_run: int, home: Path, processes) -> None:
    evaluation_id, job_id = queue_slow_evaluation(demo_run)
    worker = processes.worker()
    wait_for(lambda: answering(evaluation_id, job_id), timeout=240, what="the evaluation to store answers")
    job = get_run(job_id)
    os.kill(worker.pid, signal.SIGKILL)  # the worker alone: its evaluation process lives in its own session
    killed = time.monotonic()
    wait_for(lambda: not alive(job.pid), timeout=30, what="the orphaned evaluation process to stop")
    assert time.monotonic() - killed < 10

    after = stored(evaluation_id)
    time.sleep(3)
    assert stored(evaluation_id) == after < 2 * QUESTIONS, "nothing is stored once the worker is gone"
    assert get_run(job_id).status == "running"  # for the lease to expire: the next worker marks it interrupted
    log = (Path(job.output_dir) / "evaluate.log").read_text()
    line = log.strip().splitlines()[-1]
    earlier = int(re.search(r": (\d+) of \d+ answers stored earlier",
                            " ".join(e.message for e in run_events(job_id, limit=100))).group(1))
    assert line == (f"the worker (pid {worker.pid}) is gone: stopping; this attempt stored {after - earlier} "
                    "answers, nothing after")
