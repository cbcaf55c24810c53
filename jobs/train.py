"""One training process: ``python -m jobs.train RUN_ID``, started by the worker (``medcot train`` uses train_direct).

Loads the model (Unsloth or transformers + PEFT), the data through the same code the Dataset tab previews,
runs TRL's SFTTrainer with :class:`jobs.callbacks.StudioCallback`, and records the outcome on the run row.
At the end the run folder holds the adapter, tokenizer, resolved config and a metrics summary.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from jobs.attempt import Attempt
from jobs.process import ended, job_main, limit_cpu_threads
from jobs.ranks import is_main, layout_problem, load_checkpoints_on_cpu_ranks, save_adapter, world_size
from medcot_ui.training.config import ConfigError, RunConfig
from medcot_ui.data.held_out import save_split
from medcot_ui.data.load import Prepared, prepare
from medcot_ui.training.models import LoadedModel, installed_versions, load_for_training, torch_dtype
from medcot_ui.store import ADAPTER_FOLDER, Run, RunEvent, RunStatus, get_run, run_metrics
from medcot_ui.training.tracking import tracking_problems

OOM_ADVICE = ("The GPU ran out of memory. Lower 'Batch size per device' (raise 'Gradient accumulation' to keep "
              "the same tokens per step) or lower 'Max sequence length', or turn on 4-bit loading.")


def package_versions() -> dict[str, str]:
    versions = installed_versions(["torch", "transformers", "trl", "peft", "datasets", "accelerate", "unsloth",
                                   "bitsandbytes"])
    return {"python": sys.version.split()[0], **versions}


def usable_checkpoint(output_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint whose trainer state reads, and why each newer one was passed over (a process
    killed while saving leaves a cut-short ``trainer_state.json`` that would fail the resume)."""
    steps = sorted(((int(m.group(1)), p) for p in output_dir.glob("checkpoint-*")
                    if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / "trainer_state.json").exists()),
                   reverse=True)
    passed_over = []
    for _, path in steps:
        if (problem := _state_problem(path / "trainer_state.json")) is None:
            return path, passed_over
        passed_over.append(f"{path.name} is damaged ({problem})")
    return None, passed_over


def _state_problem(state_file: Path) -> str | None:
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return f"trainer_state.json cannot be read: {exc}"
    except ValueError as exc:
        return f"trainer_state.json is cut short or not JSON: {exc}"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return "trainer_state.json has no global_step"
    return None


def optimizer_name(name: str, device_is_cuda: bool) -> str:
    import importlib.util

    if name in {"adamw_8bit", "paged_adamw_8bit"} and not (
            device_is_cuda and importlib.util.find_spec("bitsandbytes") is not None):
        return "adamw_torch"  # 8-bit optimizers need bitsandbytes on CUDA
    return name


def trainer_arguments(config: RunConfig, output_dir: Path) -> dict[str, Any]:
    """The Trainer arguments SFT and GRPO share, from the config's training, LoRA and tracking sections (with
    W&B, its project and mode go to the environment, where its integration reads them)."""
    import torch

    t = config.training
    cuda = torch.cuda.is_available()
    dtype = torch_dtype(t.precision)  # the same choice the model was loaded with
    if config.tracking.report_to == "wandb":
        os.environ["WANDB_PROJECT"] = config.tracking.wandb_project  # the run's own setting wins
        os.environ["WANDB_MODE"] = config.tracking.wandb_mode
        os.environ.setdefault("WANDB_DIR", str(output_dir))  # offline runs land in the run's own folder
    return dict(
        output_dir=str(output_dir), run_name=config.name or None, seed=t.seed,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        max_steps=t.max_steps if t.max_steps > 0 else -1, num_train_epochs=t.num_train_epochs,
        learning_rate=t.learning_rate, warmup_steps=t.warmup_steps, lr_scheduler_type=t.lr_scheduler_type,
        weight_decay=t.weight_decay, optim=optimizer_name(t.optim, cuda), bf16=dtype is torch.bfloat16,
        fp16=dtype is torch.float16, use_cpu=not cuda,
        logging_steps=t.logging_steps, logging_nan_inf_filter=False,  # a NaN must reach our guard, not be hidden
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        report_to=[config.tracking.report_to] if config.tracking.report_to != "none" else [],
        disable_tqdm=True, dataloader_num_workers=0,
        # As the walk-through leaves it (on) unless checkpointing is turned off: with Unsloth the Trainer's
        # call is routed to Unsloth's own checkpointing; with transformers it is the same as ours.
        gradient_checkpointing=config.lora.gradient_checkpointing != "false")


def build_trainer(config: RunConfig, loaded: LoadedModel, prepared: Prepared, output_dir: Path,
                  callbacks: list[Any]) -> Any:
    """SFTTrainer with the config's settings (imported after the model so Unsloth can patch TRL first)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    t = config.training
    evaluate = t.eval_steps > 0 and bool(prepared.eval_texts)
    args = SFTConfig(
        **trainer_arguments(config, output_dir),
        eval_strategy="steps" if evaluate else "no", eval_steps=t.eval_steps if evaluate else None,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        max_length=config.model.max_seq_length, packing=t.packing, dataset_text_field="text",
        # LoRA leaves most weights frozen; DDP's search for unused parameters would only slow every step.
        ddp_find_unused_parameters=False if world_size() > 1 else None)
    return SFTTrainer(
        model=loaded.model, processing_class=loaded.tokenizer, args=args,
        train_dataset=Dataset.from_dict({"text": prepared.train_texts}),
        eval_dataset=Dataset.from_dict({"text": prepared.eval_texts}) if evaluate else None,
        callbacks=callbacks)


def save_outputs(run_id: int, config: RunConfig, output_dir: Path, backend: str, started: float) -> None:
    """The resolved config and a metrics summary beside the adapter."""
    (output_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    metrics = run_metrics(run_id)
    losses = [m.loss for m in metrics if m.loss is not None]
    evals = [m.eval_loss for m in metrics if m.eval_loss is not None]
    rates = [m.tokens_per_s for m in metrics if m.tokens_per_s]
    summary = {"run_id": run_id, "backend": backend, "steps": metrics[-1].step if metrics else 0,
               "final_loss": losses[-1] if losses else None, "final_eval_loss": evals[-1] if evals else None,
               "mean_tokens_per_s": sum(rates) / len(rates) if rates else None,
               "peak_gpu_mem_gb": max((m.gpu_mem_gb or 0 for m in metrics), default=None) or None,
               "seconds_this_attempt": round(time.time() - started, 1)}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


def _load(attempt: Attempt, config: RunConfig) -> tuple[LoadedModel, Prepared]:
    """Load model and data, recording them on the run; a stale attempt stops before touching the GPU."""
    attempt.check()
    if os.environ.get("MEDCOT_FAULT_STOP_WHILE_LOADING"):  # fault injection for tests: a load that stalls
        os.kill(os.getpid(), signal.SIGSTOP)
    loaded = load_for_training(config)
    prepared = prepare(config.data, loaded.tokenizer)
    if not is_main():  # rank 0 records the run for all processes
        return loaded, prepared
    layout = f", {world_size()} data-parallel processes" if world_size() > 1 else ""
    with attempt.session() as s:
        row = s.get(Run, attempt.run_id)
        save_split(Path(row.output_dir), prepared)  # in the transaction: only while this attempt owns the run
        row.pid, row.device = os.getpid(), loaded.device
        row.dataset_fingerprint = prepared.fingerprint
        row.versions_json = json.dumps(package_versions())
        s.add(RunEvent(run_id=attempt.run_id, message=f"model loaded: {config.model.base_model} with the "
                                                      f"{loaded.backend} backend on {loaded.device}{layout}"))
        s.add(RunEvent(run_id=attempt.run_id, message=f"data: {len(prepared.train_texts)} training rows, "
                                                      f"{len(prepared.eval_texts)} held out from {prepared.source}"))
    return loaded, prepared


def resume_point(attempt: Attempt, output_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to continue from (metrics after it are dropped: those steps are trained again)."""
    from jobs.callbacks import drop_metrics_after

    checkpoint, passed_over = usable_checkpoint(output_dir) if resume else (None, [])
    if not is_main():
        return checkpoint
    for problem in passed_over:
        fallback = f"resuming from {checkpoint.name} instead" if checkpoint else "no earlier checkpoint to use"
        print(f"[train] {problem}: {fallback}", flush=True)
        attempt.event(f"{problem}: {fallback}", "warning")
    if checkpoint is not None:
        step = int(checkpoint.name.split("-")[1])
        dropped = drop_metrics_after(attempt, step)
        attempt.event(f"resuming from {checkpoint.name} (step {step}); {dropped} later metric rows "
                      "will be recorded again")
    elif resume:
        attempt.event("no usable checkpoint: starting from step 0" if passed_over
                      else "no checkpoint saved yet: starting from step 0", "warning")
    return checkpoint


def run_training(run_id: int, attempt_number: int, parent_pid: int | None = None) -> RunStatus | None:
    """Train run ``run_id`` (claimed as ``attempt_number``) and record its outcome; returns the status, or None when
    the attempt lost the run to a newer one or a reaper (it wrote nothing then)."""
    run = get_run(run_id)
    if run is None:
        raise SystemExit(f"run {run_id} does not exist")
    attempt = Attempt(run_id, attempt_number)
    limit_cpu_threads()
    # Another rank's crash stops the launcher, and the worker records that: only rank 0 records.
    return ended(run_id, attempt_number, lambda: _train(run, attempt, parent_pid), records=is_main(),
                 crash_message=lambda exc: OOM_ADVICE if is_oom(exc) else f"{type(exc).__name__}: {exc}")


def job_start(run: Run) -> tuple[RunConfig, Path, float]:
    """What an SFT or GRPO process does first: read the config, refuse tracking it cannot do (W&B asked for but
    not installed: said plainly, no traceback), make the run folder; returns them with the start time."""
    config = run.run_config()
    if problems := tracking_problems(config):
        raise ConfigError(problems)
    output_dir = Path(run.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return config, output_dir, time.time()


def record_end(run: Run, attempt: Attempt, config: RunConfig, output_dir: Path, backend: str, started: float,
               cancelled: bool) -> RunStatus:
    """The adapter has been saved: write the config and summary beside it and record the outcome."""
    from jobs.queue import finish

    save_outputs(run.id, config, output_dir, backend, started)
    status = RunStatus.cancelled if cancelled else RunStatus.succeeded
    finish(run.id, status, "cancelled by the user; the adapter at the last step was saved" if cancelled else None,
           attempt=attempt.number)
    return status


def _train(run: Run, attempt: Attempt, parent_pid: int | None) -> RunStatus:
    from jobs.callbacks import BucketCheckpoints, NanInjector, StudioCallback, TokenCounter
    from jobs.queue import finish

    config, output_dir, started = job_start(run)
    if problem := layout_problem():
        raise ConfigError([problem])
    load_checkpoints_on_cpu_ranks()
    loaded, prepared = _load(attempt, config)
    callback = StudioCallback(attempt, parent_pid)
    callbacks: list[Any] = [callback, BucketCheckpoints()]
    if os.environ.get("MEDCOT_FAULT_NAN_AT_STEP"):
        callbacks.append(NanInjector(int(os.environ["MEDCOT_FAULT_NAN_AT_STEP"])))
    trainer = build_trainer(config, loaded, prepared, output_dir, callbacks)
    callback.tokens = trainer.data_collator = TokenCounter(trainer.data_collator)
    checkpoint = resume_point(attempt, output_dir, run.resume)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if not callback.failure:  # the loss is the same on every rank, so they all agree
        attempt.check()  # the adapter folder is the live attempt's once another owns the run
        save_adapter(trainer, loaded.model, loaded.tokenizer, output_dir / ADAPTER_FOLDER)
    if not is_main():  # rank 0 records the outcome for all
        return RunStatus.succeeded
    if callback.failure:
        finish(run.id, RunStatus.failed, callback.failure, attempt=attempt.number)
        return RunStatus.failed
    return record_end(run, attempt, config, output_dir, loaded.backend, started, callback.cancelled)


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def train_direct(config: RunConfig) -> tuple[int, RunStatus]:
    """Train a config now in this process, without the queue (the run is still recorded like any other)."""
    from jobs.queue import LeaseKeeper, claim_specific
    from medcot_ui.jobkinds import enqueue

    if config.training.num_processes > 1:
        raise ConfigError([f"training.num_processes: {config.training.num_processes} processes are started by a "
                           "worker; queue the run with `medcot enqueue` (this command trains in one process)"])
    run = enqueue(config.job_kind, config)
    worker_id = f"cli-{os.getpid()}"
    attempt = claim_specific(run.id, worker_id)
    with LeaseKeeper(run.id, worker_id):
        if run.kind == "grpo":
            from jobs.grpo import run_grpo

            status = run_grpo(run.id, attempt)
        else:
            status = run_training(run.id, attempt)
    return run.id, status or get_run(run.id).status  # lost its lease (the process froze): reaped meanwhile


def main(argv: list[str] | None = None) -> int:
    parent = int(os.environ["MEDCOT_PARENT_PID"]) if os.environ.get("MEDCOT_PARENT_PID") else None
    return job_main(__doc__.splitlines()[0], lambda run_id, attempt: run_training(run_id, attempt, parent), argv)


if __name__ == "__main__":
    sys.exit(main())
