"""What every job process shares: its command line (``python -m MODULE JOB_ID --attempt=N``), CPU threads, and how
it ends (a stale attempt quietly, a person's error with its message, a crash with its trace)."""

from __future__ import annotations

import argparse
import os
import traceback
from collections.abc import Callable

from jobs.attempt import StaleAttempt, exit_code
from medcot_ui.errors import MedcotError
from medcot_ui.redact import install as install_redaction
from medcot_ui.store import RunStatus


def limit_cpu_threads() -> None:
    """On CPU, run on few threads: the demo model's tiny matmuls run fastest on one thread, and a busy
    2-core machine (web app, other workers) slows multi-threaded steps down tens of times."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("MEDCOT_CPU_THREADS", "1")))


def _technical(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def ended(job_id: int, attempt_number: int, body: Callable[[], RunStatus | None], *, records: bool = True,
          crash_message: Callable[[BaseException], str] = _technical) -> RunStatus | None:
    """Run the job's ``body`` and return its status; when it raises, end the job the one way every kind does.

    A stale attempt (a newer one owns the job) returns None and writes nothing. A :class:`MedcotError` fails the
    job with its message; any other exception prints its trace and fails it with ``crash_message``. ``records``
    False (a data-parallel rank other than 0) only returns the status: rank 0 or the worker records it.
    """
    from jobs.queue import finish

    try:
        return body()
    except StaleAttempt as exc:
        print(exc, flush=True)
        return None
    except MedcotError as exc:
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - any crash must end the job, never the worker
        traceback.print_exc()
        message = crash_message(exc)
    if records:
        finish(job_id, RunStatus.failed, message, attempt=attempt_number)
    return RunStatus.failed


def job_main(description: str, run: Callable[[int, int], RunStatus | None], argv: list[str] | None = None) -> int:
    """A job process's entry point: parse JOB_ID and --attempt, scrub secrets from its output, run, exit with the
    code the worker reads (0 done, 1 failed, 3 stale)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("job_id", type=int, help="a job already claimed by a worker")
    parser.add_argument("--attempt", type=int, required=True,
                        help="the attempt number the worker claimed; the process writes nothing once it is stale")
    args = parser.parse_args(argv)
    install_redaction()  # no token reaches the job's log or the rows it writes (errors, events)
    return exit_code(run(args.job_id, args.attempt))
