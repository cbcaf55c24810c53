"""One run as the Runs tab shows it: header, progress and ETA, throughput, error in plain words, log tail, the
files in its folder, and the texts of its cancel / delete / undo confirmations. Read from the run store and the
run folder (no Gradio); the tab polls :func:`run_signature` and rebuilds the detail only when it changed.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func
from sqlmodel import select

from medcot_ui.redact import scrub
from medcot_ui.runs.charts import chart_frames, metric_rows
from medcot_ui.runs.status import not_responding, status_text
from medcot_ui.runs.table import ACTIVE, QueueInfo, config_summary, queue_infos
from medcot_ui.store import (FINISHED, RESUMABLE, Metric, Run, RunEvent, RunStatus, deleted_runs, live_runs,
                             read_session, run_events)
from medcot_ui.textfiles import tail_lines, without_progress_bars
from medcot_ui.units import duration, human_size, when

LOG_TAIL_LINES = 60


def run_signature(run_id: int | None) -> tuple[Any, ...] | None:
    """Changes whenever the run's detail (status, steps, events, log) changed."""
    if run_id is None:
        return None
    with read_session() as s:
        run = s.exec(select(Run.status, Run.last_step, Run.heartbeat_at, Run.finished_at, Run.cancel_requested,
                            Run.attempt, Run.error, Run.lease_expires_at, Run.output_dir)
                     .where(Run.id == run_id, live_runs())).first()
        if run is None:
            return ("gone",)
        last_event = s.exec(select(func.max(RunEvent.id)).where(RunEvent.run_id == run_id)).one()
    log = Path(run[-1]) / "train.log" if run[-1] else None
    try:
        log_size = log.stat().st_size if log else 0
    except OSError:
        log_size = 0
    # The lease expiring changes nothing in the row, but it changes what the header says.
    return tuple(run[:-1]) + (last_event, log_size, not_responding(run[0], run[-2]))


@dataclass
class Performance:
    tokens_per_s: float | None
    seconds_per_step: float | None
    peak_gpu_gb: float | None

    def describe(self, device: str | None) -> str:
        parts = [f"**{self.tokens_per_s:,.0f} tokens/s**" if self.tokens_per_s else "tokens/s: -",
                 f"**{self.seconds_per_step:.2f} s/step**" if self.seconds_per_step else "s/step: -"]
        if self.peak_gpu_gb:
            parts.append(f"peak GPU memory **{self.peak_gpu_gb:.1f} GiB**")
        elif device and device.startswith("CPU"):
            parts.append("peak GPU memory: - (trained on the CPU)")
        else:
            parts.append("peak GPU memory: -")
        return " · ".join(parts)


def performance(run_id: int, recent: int = 20) -> Performance:
    """Median tokens/s and s/step over the last ``recent`` logged steps, and the run's peak GPU memory."""
    with read_session() as s:
        tail = list(s.exec(select(Metric.tokens_per_s, Metric.seconds_per_step).where(Metric.run_id == run_id)
                           .order_by(Metric.step.desc()).limit(recent)))
        peak = s.exec(select(func.max(Metric.gpu_mem_gb)).where(Metric.run_id == run_id)).one()
    rates = [r[0] for r in tail if r[0]]
    steps = [r[1] for r in tail if r[1]]
    return Performance(statistics.median(rates) if rates else None, statistics.median(steps) if steps else None,
                       peak or None)


@dataclass
class Progress:
    done: int
    total: int | None
    eta_s: float | None
    text: str

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 0.0


def progress(run: Run, perf: Performance, now: float | None = None) -> Progress:
    now = now or time.time()
    done, total = run.last_step, run.total_steps
    if run.status == RunStatus.queued:
        return Progress(done, total, None, "queued" + (f" (resumes after step {done})" if done else ""))
    if run.status in FINISHED:
        took = duration((run.finished_at or now) - run.started_at) if run.started_at else "-"
        return Progress(done, total, None, f"{run.status} at step {done} of {total or '?'} · took {took}")
    if not_responding(run.status, run.lease_expires_at, now):
        return Progress(done, total, None, f"step {done} of {total or '?'} · no heartbeat since "
                        f"{when(run.heartbeat_at, seconds=True)}: its worker stopped; once a worker or the app "
                        "marks it interrupted, Resume continues from the last checkpoint")
    if not done:
        return Progress(0, total, None, "starting: loading the model and the data")
    per_step = perf.seconds_per_step
    if per_step is None and run.started_at:
        per_step = (now - run.started_at) / done
    eta = (total - done) * per_step if total and per_step else None
    text = f"step {done} of {total or '?'}" + (f" · about {duration(eta)} left" if eta is not None else "")
    return Progress(done, total, eta, text)


def log_tail(run: Run, lines: int = LOG_TAIL_LINES) -> str:
    """The run's events, then the last lines of its train.log (secrets scrubbed)."""
    out = ["# events"] + [f"{time.strftime('%H:%M:%S', time.localtime(e.ts))} {e.level:<7} {e.message}"
                          for e in run_events(run.id, limit=30)]
    tail = tail_lines(Path(run.output_dir) / "train.log", lines) if run.output_dir else None
    if tail is not None:
        out += ["", "# train.log (last lines, progress bars left out)"] + without_progress_bars(tail)
    else:
        out += ["", "# train.log: not written yet (the run has not started)"]
    return scrub("\n".join(out))


def artifacts(run: Run) -> list[tuple[str, str, str]]:
    """(name, what it is, size) of each file or folder in the run's output folder."""
    root = Path(run.output_dir) if run.output_dir else None
    if root is None or not root.exists():
        return []
    meaning = {"adapter": "LoRA adapter + tokenizer (what Compare and Publish use)", "config.yaml": "resolved config",
               "summary.json": "final metrics summary", "train.log": "training log",
               "wandb": "Weights & Biases files (an offline run uploads with `wandb sync`)"}
    out = []
    for p in sorted(root.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
        what = meaning.get(p.name) or ("checkpoint (resume continues from the latest)"
                                       if p.name.startswith("checkpoint-") else "")
        out.append((p.name + ("/" if p.is_dir() else ""), what, human_size(size)))
    return out


def artifacts_markdown(run: Run) -> str:
    items = artifacts(run)
    if not items:
        return "No files yet: the run folder is written when training starts."
    rows = "\n".join(f"| `{n}` | {w} | {s} |" for n, w, s in items)
    return f"In `{run.output_dir}`:\n\n| file | what | size |\n|---|---|---|\n{rows}"


_PLAIN_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"WandbCallback requires wandb|No module named 'wandb'"),
     "Weights & Biases reporting was on, but the wandb package is not installed where training runs. Install it "
     "(`pip install wandb`) or set Tracking → Report to 'none', then clone the run and launch it again."),
    (re.compile(r"api_key not configured|wandb\.errors\.UsageError|WANDB_API_KEY", re.I),
     "Weights & Biases online mode needs WANDB_API_KEY in the app's environment. Set it, or choose W&B mode "
     "'offline' to log locally without a network."),
    (re.compile(r"exited with code (-?\d+)"),
     "The training process stopped unexpectedly (exit code {0}). The last lines of its log are below; the full "
     "log is under Log."),
)
_TECHNICAL = re.compile(r"^([A-Z][A-Za-z]+(Error|Exception)): ")


def error_heading(status: str) -> str:
    """How the run's error line is introduced: a failure went wrong; a cancel or an interruption just stopped it."""
    return "What went wrong:" if status == RunStatus.failed else "Why it stopped:"


def explain_error(error: str | None) -> str:
    """The run's error in plain words, with the original text kept underneath when it is technical."""
    if not error:
        return ""
    error = scrub(error)
    for pattern, plain in _PLAIN_ERRORS:
        if m := pattern.search(error):
            return plain.format(*m.groups()) + f"\n\nDetails:\n```\n{error}\n```"
    if m := _TECHNICAL.match(error):
        return (f"Training stopped with an unexpected error ({m.group(1)}). The log below has the full trace; "
                f"if it persists, clone the run and change the setting it names.\n\nDetails:\n```\n{error}\n```")
    return error  # our own messages (data, model, out-of-memory, non-finite loss) are already plain words


@dataclass
class RunDetail:
    run: Run
    header: str
    progress: Progress
    perf: Performance
    error: str
    config_yaml: str
    queue: QueueInfo | None
    can_cancel: bool
    can_resume: bool
    can_delete: bool
    evaluates: bool  # an eval loss series is (or will be) logged
    charts: dict[str, pd.DataFrame] = field(default_factory=dict)


def layout(run: Run) -> str:
    """How many processes train the run (data parallel, one per GPU), as the run's header shows it."""
    try:
        processes = run.run_config().training.num_processes
    except ValueError:  # not valid JSON, or no longer a valid config
        return ""
    return f" · {processes} processes (data parallel, one per GPU)" if processes > 1 else ""


def run_detail(run_id: int, with_charts: bool = True, now: float | None = None) -> RunDetail | None:
    now = now or time.time()
    with read_session() as s:
        run = s.get(Run, run_id)
        if run is None or run.deleted:
            return None
        queue = queue_infos(s, now).get(run_id) if run.status == RunStatus.queued else None
    perf = performance(run_id)
    model, dataset = config_summary(run.config_json)
    status = status_text(run.status, run.cancel_requested, run.lease_expires_at, run.heartbeat_at, now)
    header = (f"### Run {run.id}: {run.name}\n**{status}** · attempt {run.attempt or 0} · "
              f"{run.device or 'device not known yet'}{layout(run)} · model `{model}` · data {dataset}")
    if queue is not None:
        header += f"\n\nQueue position **#{queue.position}**: {queue.reason}."
    if run.resume and run.status == RunStatus.queued:
        header += "\n\nThis run resumes from its last checkpoint."
    try:
        config = run.run_config()
        config_yaml, evaluates = config.to_yaml(), config.training.eval_steps > 0 and config.data.eval_size > 0
    except ValueError:  # not valid JSON, or no longer a valid config: shown as stored
        config_yaml, evaluates = run.config_json, False
    return RunDetail(
        run=run, header=header, progress=progress(run, perf, now), perf=perf, error=explain_error(run.error),
        config_yaml=scrub(config_yaml), queue=queue,
        can_cancel=run.status in ACTIVE and not run.cancel_requested,
        can_resume=run.status in RESUMABLE,
        can_delete=run.status != RunStatus.running, evaluates=evaluates,
        charts=chart_frames(metric_rows(run_id), evaluates) if with_charts else {})


def progress_html(p: Progress) -> str:
    """A progress bar with the step count and ETA (plain HTML, so it needs no Gradio)."""
    pct = p.fraction * 100
    return (f'<div class="run-progress" data-fraction="{p.fraction:.4f}">'
            f'<div style="background:var(--neutral-200,#e5e7eb);border-radius:6px;height:14px;overflow:hidden">'
            f'<div style="width:{pct:.1f}%;height:100%;background:var(--color-accent,#f97316)"></div></div>'
            f'<div class="run-progress-text" style="margin-top:4px">{p.text}</div></div>')


# ---- confirmations and undo -------------------------------------------------------------------------------

def confirm_text(kind: str, run: Run, undo_seconds: float) -> str:
    """What the confirmation row asks before a cancel or a delete."""
    if kind == "cancel":
        return (f"Cancel run {run.id} ({run.name})? A running run stops at its next step and keeps its adapter; "
                "you can resume it later.")
    return (f"Delete run {run.id} ({run.name}), its metrics and its folder `{run.output_dir}`? You can undo this "
            f"for {duration(undo_seconds)}; then its files are removed for good.")


def deleted_message(run_id: int, undo_seconds: float) -> str:
    return f"Run {run_id} was deleted. **Undo** brings it back within {duration(undo_seconds)}."


def restored_message(run: Run) -> str:
    return f"Run {run.id} ({run.name}) is back, as it was" + (" (queued again)." if run.status == "queued" else ".")


def deleted_choices(now: float | None = None) -> list[tuple[str, int]]:
    """Deleted runs that can still be restored, for the "Recently deleted" list."""
    now = now or time.time()
    return [(f"{r.label} · deleted {duration(now - (r.deleted_at or now))} ago", int(r.id)) for r in deleted_runs()]
