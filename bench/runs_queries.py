"""Runs tab responsiveness: 1,000 runs and 100,000 metric rows in a SQLite file.

Times the queries the Runs tab makes (the same functions it calls): the poll signatures, the table, and one
run's chart data, for a typical run (~90 logged steps) and the longest one (10,000 steps), every row carrying the
extra keys TRL logs (token accuracy, entropy, num_tokens), and the "More metrics" chart's queries.

    python bench/runs_queries.py [--runs 1000] [--metrics 100000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def populate(runs: int, metrics: int) -> tuple[int, int]:
    """Fill the store; returns (a typical run id, the longest run id)."""
    from sqlalchemy import text

    from medcot_ui.training.presets import PRESETS
    from medcot_ui.store import get_engine

    rng = random.Random(0)
    configs = [PRESETS[name]().to_json() for name in PRESETS]
    statuses = ["succeeded"] * 80 + ["failed"] * 8 + ["cancelled"] * 7 + ["interrupted"] * 5
    now = time.time()
    run_rows = []
    for i in range(1, runs + 1):
        status = "running" if i == runs - 5 else "queued" if i > runs - 5 else rng.choice(statuses)
        started = now - (runs - i) * 600
        run_rows.append({"id": i, "name": f"run-{i}", "status": status, "config_json": rng.choice(configs),
                         "created_at": started - 5, "started_at": None if status == "queued" else started,
                         "finished_at": started + 300 if status not in {"queued", "running"} else None,
                         "heartbeat_at": started + 300, "total_steps": 60, "last_step": 60, "last_loss": 1.2,
                         "output_dir": f"/nonexistent/run-{i}"})
    longest = 1
    long_steps = metrics // 10
    per_run = (metrics - long_steps) // (runs - 1)
    metric_rows = []
    for run_id in range(1, runs + 1):
        steps = long_steps if run_id == longest else per_run + (1 if run_id <= (metrics - long_steps) % (runs - 1) + 1
                                                                 and run_id != longest else 0)
        for step in range(1, steps + 1):
            metric_rows.append({"run_id": run_id, "step": step, "epoch": step / 100, "loss": 2 + rng.random(),
                                "learning_rate": 2e-4, "grad_norm": rng.random(), "tokens_per_s": 6900.0,
                                "seconds_per_step": 0.94, "gpu_mem_gb": 6.5,
                                "eval_loss": 2.0 if step % 50 == 0 else None, "created_at": now,
                                # what TRL's SFTTrainer logs besides (kept in extra_json)
                                "extra_json": json.dumps({"mean_token_accuracy": rng.random(), "entropy": 1.5,
                                                          "num_tokens": 51200.0 * step})})
    metric_rows = metric_rows[:metrics]
    engine = get_engine()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO runs (id, name, status, config_json, created_at, started_at, finished_at, "
                          "heartbeat_at, total_steps, last_step, last_loss, output_dir, attempt, cancel_requested, "
                          "resume) VALUES (:id, :name, :status, :config_json, :created_at, :started_at, "
                          ":finished_at, :heartbeat_at, :total_steps, :last_step, :last_loss, :output_dir, 1, 0, 0)"),
                     run_rows)
        conn.execute(text("INSERT INTO metrics (run_id, step, epoch, loss, learning_rate, grad_norm, tokens_per_s, "
                          "seconds_per_step, gpu_mem_gb, eval_loss, created_at, extra_json) VALUES (:run_id, :step, "
                          ":epoch, :loss, :learning_rate, :grad_norm, :tokens_per_s, :seconds_per_step, :gpu_mem_gb, "
                          ":eval_loss, :created_at, :extra_json)"), metric_rows)
    return runs // 2, longest


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm the connection pool and SQLite's page cache, as a polling tab has
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="medcot-bench-"))
    os.environ["MEDCOT_HOME"] = str(home)
    os.environ.pop("MEDCOT_DATABASE_URL", None)

    from medcot_ui.runs import charts as run_charts, detail as one_run, extra_metrics, table as runs_table
    from medcot_ui.store import Metric, Run, read_session

    t0 = time.perf_counter()
    typical, longest = populate(args.runs, args.metrics)
    fill_s = time.perf_counter() - t0
    with read_session() as s:
        from sqlalchemy import func
        from sqlmodel import select

        n_runs = s.exec(select(func.count(Run.id))).one()
        n_metrics = s.exec(select(func.count(Metric.id))).one()
        n_typical = s.exec(select(func.count(Metric.id)).where(Metric.run_id == typical)).one()
    size_mb = sum(p.stat().st_size for p in home.glob("runs.db*")) / 2**20
    print(f"store: {n_runs:,} runs, {n_metrics:,} metric rows, {size_mb:.1f} MB SQLite (filled in {fill_s:.1f} s)")
    print(f"each query run {args.repeat} times after one warm-up; goal < 100 ms\n")

    def chart(run_id: int):
        return lambda: run_charts.chart_frames(run_charts.metric_rows(run_id))

    cases = [
        ("poll: table signature", runs_table.table_signature),
        (f"poll: metric signature (run {typical})", lambda: run_charts.metric_signature(typical)),
        (f"poll: run signature (run {typical})", lambda: one_run.run_signature(typical)),
        (f"table: {runs_table.TABLE_LIMIT} newest + active runs, formatted", runs_table.table_frame),
        (f"chart: run {typical} ({n_typical} steps) query + frames", chart(typical)),
        (f"chart: run {longest} ({args.metrics // 10:,} steps) query + frames", chart(longest)),
        (f"detail: run {typical} (header, progress, charts)", lambda: one_run.run_detail(typical)),
        (f"more metrics: run {longest}'s keys", lambda: extra_metrics.extra_keys(longest)),
        (f"more metrics: run {longest} ({args.metrics // 10:,} steps) one key's frame",
         lambda: extra_metrics.extra_frame(longest, "num_tokens")),
    ]
    width = max(len(name) for name, _ in cases)
    print(f"| {'query'.ljust(width)} | median ms | p95 ms | < 100 ms |")
    print(f"|{'-' * (width + 2)}|-----------|--------|----------|")
    for name, fn in cases:
        median, p95 = timed(fn, args.repeat)
        print(f"| {name.ljust(width)} | {median:9.2f} | {p95:6.2f} | {'yes' if p95 < 100 else 'NO':<8} |")


if __name__ == "__main__":
    main()
