"""The training process's link to the run store: metrics, heartbeat, cancel, non-finite loss, orphan guard."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from transformers import TrainerCallback

from jobs.attempt import STALE_EXIT_CODE, Attempt
from jobs.ranks import from_main, is_main, summed, worker_pid
from medcot_ui.hosting.bucket_files import checkpoint_group, keep_quietly
from medcot_ui.settings import get_settings
from medcot_ui.store import Metric, Run

# The logged keys that have a column of their own in ``metrics``; every other number goes to ``extra_json``.
COLUMN_KEYS = frozenset({"loss", "eval_loss", "epoch", "learning_rate", "grad_norm"})


def _gpu_memory_gb() -> float | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return None


class TokenCounter:
    """Wraps the trainer's data collator and counts the real (non-padding) tokens of every batch it builds.

    Not every backend logs TRL's ``num_tokens`` (Unsloth replaces the loss computation), so we count the
    tokens ourselves, the same way for every backend and for the reference bench script.
    """

    def __init__(self, collator: Any):
        self.collator = collator
        self.total = 0

    def __call__(self, features: Any) -> Any:
        batch = self.collator(features)
        mask = batch.get("attention_mask")
        # padding-free / packed batches have no mask: every token is real
        self.total += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch


class StudioCallback(TrainerCallback):
    """Writes a metrics row every logging step and stops training on cancel or a non-finite loss.

    Every write goes through ``attempt.session()``: once a newer attempt owns the run it raises StaleAttempt,
    which ends ``trainer.train()`` before anything is written."""

    def __init__(self, attempt: Attempt, parent_pid: int | None, tokens: TokenCounter | None = None):
        self.attempt = attempt
        self.run_id = attempt.run_id
        self.tokens = tokens
        self.parent_pid = parent_pid
        self.failure: str | None = None
        self.cancelled = False
        self._last_log: tuple[float, int, float | None] | None = None  # (time, step, num_tokens)

    # -- lifecycle --
    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        import torch

        if torch.cuda.is_available():  # peak memory of training, not of the 4-bit conversion at load time
            torch.cuda.reset_peak_memory_stats()
        if is_main():
            with self.attempt.session() as s:
                run = s.get(Run, self.run_id)
                run.total_steps = state.max_steps
        self._last_log = (time.perf_counter(), state.global_step, self._token_count())

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._orphan_guard()
        # Rank 0 heartbeats and reads the cancel flag (reaped or taken over: StaleAttempt, and under torchrun the
        # launcher then stops the other ranks); every rank gets its answer, so all stop at this step.
        cancel_requested = from_main(is_main() and self.attempt.heartbeat(state.global_step))
        if cancel_requested and not self.cancelled:
            self.cancelled = True
            control.should_save = True  # the Trainer checkpoints this step before stopping
            control.should_training_stop = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kw: Any) -> None:
        logs = logs or {}
        loss, eval_loss = logs.get("loss"), logs.get("eval_loss")
        if loss is None and eval_loss is None:
            return  # the end-of-training summary
        step = state.global_step
        if loss is not None and not math.isfinite(loss):
            self.failure = (f"The training loss became non-finite ({loss}) at step {step}. Lower the learning "
                            "rate, check the data for broken rows, or use bf16 instead of fp16.")
            control.should_training_stop = True
        now = time.perf_counter()
        tokens_per_s = seconds_per_step = None
        if loss is not None and self._last_log is not None:
            t0, step0, tokens0 = self._last_log
            num_tokens = self._token_count()
            if step > step0:
                seconds_per_step = (now - t0) / (step - step0)
            if num_tokens is not None and tokens0 is not None and now > t0:
                tokens_per_s = (num_tokens - tokens0) / (now - t0)
            self._last_log = (now, step, num_tokens)
        if is_main():
            self._write_metric(step, logs, loss, eval_loss, tokens_per_s, seconds_per_step)

    def _token_count(self) -> float | None:
        # Every rank counts its own batches; all of them call on_log at the same step, so the sum is collective.
        return summed(float(self.tokens.total)) if self.tokens is not None else None

    def _write_metric(self, step: int, logs: dict[str, float], loss: float | None, eval_loss: float | None,
                      tokens_per_s: float | None, seconds_per_step: float | None) -> None:
        finite = (lambda v: v if v is not None and math.isfinite(v) else None)
        with self.attempt.session() as s:
            existing = s.exec(_metric_at(self.run_id, step)).first()
            metric = existing or Metric(run_id=self.run_id, step=step)
            if loss is not None:
                metric.loss = finite(loss)
                metric.epoch = logs.get("epoch")
                metric.learning_rate = logs.get("learning_rate")
                metric.grad_norm = finite(logs.get("grad_norm"))
                metric.tokens_per_s = tokens_per_s
                metric.seconds_per_step = seconds_per_step
                metric.gpu_mem_gb = _gpu_memory_gb()
            if eval_loss is not None:
                metric.eval_loss = finite(eval_loss)
            metric.extra_json = merged_extras(metric.extra_json, logs)
            s.add(metric)
            if loss is not None:
                run = s.get(Run, self.run_id)
                run.last_loss = finite(loss)

    def _orphan_guard(self) -> None:
        # If the worker died (kill -9), stop at once: the lease will expire and the run becomes interrupted.
        if self.parent_pid is not None and worker_pid() != self.parent_pid:
            os._exit(STALE_EXIT_CODE)


class BucketCheckpoints(TrainerCallback):
    """Bucket storage: each checkpoint copied to the mount once saved, so a restarted Space resumes from it."""

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        settings = get_settings()
        folder = Path(args.output_dir).resolve() / f"checkpoint-{state.global_step}"
        if is_main() and settings.storage_mode == "bucket" and settings.home in folder.parents:
            keep_quietly(folder, checkpoint_group(settings.home, folder.parent), settings=settings)


def merged_extras(stored: str | None, logs: dict[str, Any]) -> str | None:
    """The step's other logged numbers (token accuracy, entropy, num_tokens...) added to those stored already (a
    training and an evaluation log can share a step), as JSON; None when there are none."""
    extras = json.loads(stored) if stored else {}
    extras.update({key: float(value) for key, value in logs.items() if key not in COLUMN_KEYS
                   and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)})
    return json.dumps(extras, sort_keys=True) if extras else None


def _metric_at(run_id: int, step: int) -> Any:
    from sqlmodel import select

    return select(Metric).where(Metric.run_id == run_id, Metric.step == step)


def drop_metrics_after(attempt: Attempt, step: int) -> int:
    """On resume, forget metrics past the checkpoint: those steps are trained again."""
    with attempt.session() as s:
        res = s.connection().execute(text("DELETE FROM metrics WHERE run_id = :id AND step > :step"),
                                     {"id": attempt.run_id, "step": step})
        return res.rowcount


class NanInjector(TrainerCallback):
    """Fault injection for tests (MEDCOT_FAULT_NAN_AT_STEP): poisons a LoRA weight so the loss really goes NaN."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if state.global_step == self.at_step and model is not None:
            import torch

            with torch.no_grad():
                for name, p in model.named_parameters():
                    if p.requires_grad:
                        p.fill_(float("nan"))
                        break

