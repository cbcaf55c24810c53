"""A toy job kind, registered in a few lines: ``python -m tests.toy_job JOB_ID --attempt=N`` counts to its payload's
``to``, one step at a time; it fails (as a person's error, naming the field) at ``fail_at``, and dies with exit
code ``exit_with`` (as a crashed process would, recording nothing)."""

from __future__ import annotations

import os
import sys

from pydantic import BaseModel, Field

from jobs.attempt import Attempt
from jobs.process import ended, job_main
from medcot_ui.errors import MedcotError
from medcot_ui.jobkinds import Kind, payload_of, register
from medcot_ui.store import RunStatus, get_run


class Count(BaseModel):
    to: int = Field(ge=1)
    fail_at: int | None = None
    exit_with: int | None = None


COUNT = register(Kind(name="count", payload=Count, module="tests.toy_job", process="counting", log_name="count.log",
                      folder="count", summary=lambda c: f"count to {c.to}", steps=lambda c: c.to))


def count(job_id: int, attempt_number: int) -> RunStatus | None:
    from jobs.queue import finish

    def body() -> RunStatus:
        payload = payload_of(get_run(job_id))
        if payload.exit_with is not None:
            os._exit(payload.exit_with)
        for step in range(1, payload.to + 1):
            if step == payload.fail_at:
                raise MedcotError(f"fail_at: the count stopped at {step}, as asked")
            Attempt(job_id, attempt_number).heartbeat(step)
        print(f"counted to {payload.to} ({type(payload).__name__})", flush=True)
        finish(job_id, RunStatus.succeeded, attempt=attempt_number)
        return RunStatus.succeeded

    return ended(job_id, attempt_number, body)


if __name__ == "__main__":
    sys.exit(job_main("count to a number", count))
