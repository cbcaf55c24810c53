"""The evaluation job kind: an EvalRequest (its questions are stored beside it), answered by ``jobs.evaluate``."""

from __future__ import annotations

from medcot_ui.evaluate.create import EvalRequest
from medcot_ui.jobkinds import Kind, register


def _summary(req: EvalRequest) -> str:
    against = f"run {req.base_run_id}" if req.base_run_id is not None else "its base model"
    return f"{req.kind} evaluation of run {req.run_id} against {against}, {req.n} questions"


EVALUATE = register(Kind(name="evaluate", payload=EvalRequest, module="jobs.evaluate", process="evaluation",
                         log_name="evaluate.log", folder="evaluation-job", summary=_summary))
