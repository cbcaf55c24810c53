"""What the Runs tab shows, read from the database and the run folders (no Gradio).

Everything comes from the run store, so a reload, a second browser or an app restart shows the same truth.
The tab polls :func:`table_signature` / :func:`run_signature` / :func:`metric_signature` (one small indexed
query each) and only runs the heavier queries when a signature changed.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, text
from sqlmodel import select

from medcot_ui.hosting.redact import scrub
from medcot_ui.runs.status import not_responding, status_text
from medcot_ui.store import (FINISHED, RESUMABLE, Metric, Run, RunEvent, RunStatus, deleted_runs, live_runs,
                             read_session, run_events)
from medcot_ui.textfiles import tail_lines
from medcot_ui.training.config import RunConfig
from medcot_ui.units import duration, human_size, when

TABLE_COLUMNS = ["id", "name", "status", "model", "dataset", "started", "duration", "last loss", "steps", "queue"]
# Fixed shares of the table's width: long Hub names wrap in their own column instead of pushing the rest aside.
TABLE_WIDTHS = ["4%", "11%", "9%", "17%", "20%", "11%", "7%", "7%", "7%", "7%"]
TABLE_LIMIT = 200          # most recent runs shown (active runs are always shown)
CHART_MAX_POINTS = 1500    # longer histories are thinned evenly (the last point is always kept)
LOG_TAIL_LINES = 60
# A queued run that no worker picked up within this long probably has no worker to go to.
NO_WORKER_AFTER_S = 15.0
ACTIVE = (RunStatus.queued, RunStatus.running)


# ---- formatting -----------------------------------------------------------------------------------------

def _config_summary(config_json: str) -> tuple[str, str]:
    """(model, dataset) as the table shows them."""
    try:
        config = RunConfig.from_json(config_json)
    except ValueError:  # not valid JSON, or no longer a valid config
        return "?", "?"
    data = config.data
    if data.source == "demo":
        dataset = "demo data"
    elif data.source == "file":
        dataset = data.file_label() or "?"
    else:
        dataset = f"{data.dataset_id} ({data.dataset_config}, {data.split})"
    return config.model.base_model, dataset


def _duration_of(started: float | None, finished: float | None, status: str, now: float) -> str:
    if not started or status == RunStatus.queued:  # a resumed run waiting again has no clock running
        return "-"
    return duration((now if status == RunStatus.running else finished or now) - started)


# ---- the table ------------------------------------------------------------------------------------------

@dataclass
class QueueInfo:
    position: int
    reason: str  # the full sentence (the run's detail)
    brief: str   # what fits in the table's queue column

    def short(self) -> str:
        return f"#{self.position} · {self.brief}"


def _queue_infos(s: Any, now: float) -> dict[int, QueueInfo]:
    """Why each queued run waits: which runs are training, or that no worker seems to be there."""
    queued = list(s.exec(select(Run.id, Run.created_at).where(Run.status == RunStatus.queued, live_runs())
                         .order_by(Run.id)))
    if not queued:
        return {}
    running = list(s.exec(select(Run.id, Run.name).where(Run.status == RunStatus.running)
                          .order_by(Run.id)))
    infos: dict[int, QueueInfo] = {}
    for pos, (run_id, created) in enumerate(queued, start=1):
        if running:
            busy = " and ".join(f"run {rid} ({name})" for rid, name in running)
            brief = f"{busy} {'is' if len(running) == 1 else 'are'} training"
            reason = f"waiting: {brief} (a worker trains one run at a time)"
            if pos > 1:
                reason += f"; {pos - 1} queued ahead"
                brief += f", {pos - 1} ahead"
        elif pos > 1:
            brief = f"after run {queued[0][0]}"
            reason = f"waiting: run {queued[0][0]} starts first"
        elif now - created > NO_WORKER_AFTER_S:
            brief = "no worker has picked it up"
            reason = ("waiting for a worker: none has picked it up. The app starts one unless it was started "
                      "with --no-worker; otherwise run `python -m jobs.worker`")
        else:
            brief = "starting"
            reason = "starting: a worker will pick it up in a moment"
        infos[run_id] = QueueInfo(pos, reason, brief)
    return infos


def table_rows(limit: int = TABLE_LIMIT, now: float | None = None) -> list[list[Any]]:
    """One row per run, newest first (every queued or running run is included even beyond ``limit``)."""
    now = now or time.time()
    cols = (Run.id, Run.name, Run.status, Run.config_json, Run.started_at, Run.finished_at, Run.last_step,
            Run.total_steps, Run.last_loss, Run.cancel_requested, Run.lease_expires_at, Run.heartbeat_at)
    with read_session() as s:
        recent = list(s.exec(select(*cols).where(live_runs()).order_by(Run.id.desc()).limit(limit)))
        oldest_shown = recent[-1][0] if recent else 0
        active = list(s.exec(select(*cols).where(Run.status.in_(ACTIVE), Run.id < oldest_shown, live_runs())
                             .order_by(Run.id.desc())))
        queue = _queue_infos(s, now)
    rows = []
    for (rid, name, status, config_json, started, finished, step, total, loss, cancelling, lease, beat) in (
            active + recent):
        model, dataset = _config_summary(config_json)
        rows.append([rid, name, status_text(status, cancelling, lease, beat, now), model, dataset, when(started),
                     _duration_of(started, finished, status, beat if not_responding(status, lease, now) else now),
                     f"{loss:.4f}" if loss is not None else "-", f"{step} / {total or '?'}",
                     queue[rid].short() if rid in queue else ""])
    return sorted(rows, key=lambda r: -r[0])


def table_frame() -> pd.DataFrame:
    return pd.DataFrame(table_rows(), columns=TABLE_COLUMNS)


def table_signature() -> tuple[Any, ...]:
    """Changes whenever any row the table shows could have changed (one aggregate query over runs)."""
    with read_session() as s:
        rows = s.exec(select(Run.status, func.count(Run.id), func.max(Run.id), func.sum(Run.last_step),
                             func.max(Run.heartbeat_at), func.max(Run.finished_at), func.max(Run.started_at),
                             func.sum(Run.cancel_requested)).where(live_runs()).group_by(Run.status)).all()
    # While a run is queued or running, a 5-second clock too: its duration and "waiting for a worker" change with
    # time alone. Otherwise nothing changes by itself, and the table is not rebuilt.
    clock = int(time.time() // 5) if any(r[0] in ACTIVE for r in rows) else None
    return tuple(sorted(tuple(r) for r in rows)) + (clock,)


# ---- one run --------------------------------------------------------------------------------------------

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


def metric_signature(run_id: int | None) -> tuple[int, int | None] | None:
    """(rows, last step) of a run's metrics: charts are redrawn only when this changes."""
    if run_id is None:
        return None
    with read_session() as s:
        count, last = s.exec(select(func.count(Metric.id), func.max(Metric.step))
                             .where(Metric.run_id == run_id)).one()
    return int(count), last


CHART_COLUMNS = ("step", "loss", "learning_rate", "grad_norm", "tokens_per_s", "seconds_per_step", "gpu_mem_gb",
                 "eval_loss")
_COLS = ", ".join(CHART_COLUMNS)
# Long histories are thinned in the database (every k-th row, plus every eval row and the latest training loss),
# so a 100,000-step run costs about the same to draw as a 1,500-step one. Window functions: SQLite >= 3.25 and
# PostgreSQL.
_THINNED = text(f"SELECT {_COLS} FROM (SELECT {_COLS}, row_number() OVER (ORDER BY step) AS rn "
                "FROM metrics WHERE run_id = :run_id) AS m "
                "WHERE (rn - 1) % :stride = 0 OR eval_loss IS NOT NULL OR step = (SELECT max(step) FROM metrics "
                "WHERE run_id = :run_id AND loss IS NOT NULL) ORDER BY step")


def metric_rows(run_id: int, max_points: int = CHART_MAX_POINTS) -> list[tuple[Any, ...]]:
    """The run's metric rows (the chart columns), in step order, thinned to about ``max_points``."""
    count = (metric_signature(run_id) or (0, None))[0]
    stride = max(1, -(-count // max_points))
    with read_session() as s:
        return [tuple(r) for r in s.connection().execute(_THINNED, {"run_id": run_id, "stride": stride})]


TRAIN_LOSS, EVAL_LOSS = "train loss", "eval loss"  # the loss chart's two series
# The learning-rate chart plots multiples of 1e-4: its axis labels stay short ("2" for the recipe's 2e-4), where
# the plot would clip "0.0002" and SI prefixes ("200µ", ".2m") read badly.
LR_UNIT, LR_TITLE = 1e-4, "Learning rate (× 1e-4)"


def chart_frames(rows: list[tuple[Any, ...]]) -> dict[str, pd.DataFrame]:
    """Data for the four charts: loss (train + eval series), learning rate, grad norm, tokens/s.

    Column types are fixed (int step, float value, text series) even when there is no data yet: the plot infers
    its axis types from the first frame it gets, and an empty untyped frame would make them categorical. For the
    same reason every series has a row from the start (a missing one gets a single empty point, which the plot
    skips): the plot takes its colours from the series in its first frame and would draw a later one invisibly.
    """
    index = {c: i for i, c in enumerate(CHART_COLUMNS)}

    def points(*series: tuple[str, str], unit: float = 1.0) -> pd.DataFrame:
        picked = [(r[0], r[index[col]] / unit, label) for col, label in series for r in rows
                  if r[index[col]] is not None]
        first_step = picked[0][0] if picked else 0
        picked += [(first_step, math.nan, label) for _, label in series if label not in {p[2] for p in picked}]
        return pd.DataFrame({"step": pd.Series([p[0] for p in picked], dtype="int64"),
                             "value": pd.Series([p[1] for p in picked], dtype="float64"),
                             "series": pd.Series([p[2] for p in picked], dtype="str")})

    return {"loss": points(("loss", TRAIN_LOSS), ("eval_loss", EVAL_LOSS)),
            "learning_rate": points(("learning_rate", "learning rate"), unit=LR_UNIT),
            "grad_norm": points(("grad_norm", "grad norm")), "tokens_per_s": points(("tokens_per_s", "tokens/s"))}


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
        out += ["", f"# train.log (last {lines} lines)"] + tail
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
    charts: dict[str, pd.DataFrame] = field(default_factory=dict)


def run_detail(run_id: int, with_charts: bool = True, now: float | None = None) -> RunDetail | None:
    now = now or time.time()
    with read_session() as s:
        run = s.get(Run, run_id)
        if run is None or run.deleted:
            return None
        queue = _queue_infos(s, now).get(run_id) if run.status == RunStatus.queued else None
    perf = performance(run_id)
    model, dataset = _config_summary(run.config_json)
    status = status_text(run.status, run.cancel_requested, run.lease_expires_at, run.heartbeat_at, now)
    header = (f"### Run {run.id}: {run.name}\n**{status}** · attempt {run.attempt or 0} · "
              f"{run.device or 'device not known yet'} · model `{model}` · data {dataset}")
    if queue is not None:
        header += f"\n\nQueue position **#{queue.position}**: {queue.reason}."
    if run.resume and run.status == RunStatus.queued:
        header += "\n\nThis run resumes from its last checkpoint."
    try:
        config_yaml = run.run_config().to_yaml()
    except ValueError:  # not valid JSON, or no longer a valid config: shown as stored
        config_yaml = run.config_json
    return RunDetail(
        run=run, header=header, progress=progress(run, perf, now), perf=perf, error=explain_error(run.error),
        config_yaml=scrub(config_yaml), queue=queue,
        can_cancel=run.status in ACTIVE and not run.cancel_requested,
        can_resume=run.status in RESUMABLE,
        can_delete=run.status != RunStatus.running,
        charts=chart_frames(metric_rows(run_id)) if with_charts else {})


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

