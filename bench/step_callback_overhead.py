"""What the training job adds to every optimizer step: StudioCallback's heartbeat/cancel write and metrics rows.

The app's job differs from the reference script by this callback (one UPDATE ... RETURNING per step, a metrics
row per logging step) and by its checkpoints. This times the callback alone against a real runs.db, with and
without a reader polling the database the way an open Runs tab does, and prints it per step and as a share of
the GPU step it rides on:

    python bench/step_callback_overhead.py [--steps 2000] [--logging-steps 10] [--gpu-step-s 0.927]

Both arms alternate (A B A B) in one launch; the share uses the reference script's measured H200 step time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def time_steps(steps: int, logging_steps: int) -> float:
    """Seconds per step spent in the callback for one run of ``steps`` steps."""
    from jobs.attempt import Attempt
    from jobs.callbacks import StudioCallback
    from jobs.queue import claim
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.training.presets import quick_demo

    run_id = enqueue("train", quick_demo()).id
    worker = "bench-worker"
    assert claim(worker) == run_id
    callback = StudioCallback(Attempt(run_id, 1), parent_pid=None)
    state = SimpleNamespace(global_step=0, max_steps=steps)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    callback.on_train_begin(None, state, control)
    spent = 0.0
    for step in range(1, steps + 1):
        state.global_step = step
        t0 = time.perf_counter()
        callback.on_step_end(None, state, control)
        if step % logging_steps == 0:
            callback.on_log(None, state, control, logs={"loss": 1.0, "learning_rate": 2e-4, "grad_norm": 0.5,
                                                         "epoch": step / steps})
        spent += time.perf_counter() - t0
    return spent / steps


def poll_like_the_runs_tab(stop: threading.Event) -> None:
    from medcot_ui.runs import table as runs_table

    while not stop.is_set():
        runs_table.table_signature()
        runs_table.table_rows()
        stop.wait(0.25)  # four times as often as the tab's 1-second timer: a few open browser tabs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--gpu-step-s", type=float, default=0.927, help="the reference script's steady s/step")
    args = p.parse_args()
    os.environ["MEDCOT_HOME"] = tempfile.mkdtemp(prefix="medcot-bench-")
    from medcot_ui.store import get_engine

    get_engine()
    results: dict[str, list[float]] = {"alone": [], "with a polling Runs tab": []}
    for _ in range(args.rounds):
        results["alone"].append(time_steps(args.steps, args.logging_steps))
        stop = threading.Event()
        reader = threading.Thread(target=poll_like_the_runs_tab, args=(stop,), daemon=True)
        reader.start()
        try:
            results["with a polling Runs tab"].append(time_steps(args.steps, args.logging_steps))
        finally:
            stop.set()
            reader.join()
    print(f"# {platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
          f"Python {platform.python_version()} · {time.strftime('%Y-%m-%d')} · load {os.getloadavg()[0]:.1f}")
    print(f"# {args.steps} steps, a metrics row every {args.logging_steps}, {args.rounds} rounds alternating")
    print("| arm | callback ms/step (median) | per round | share of a {:.3f} s GPU step |".format(args.gpu_step_s))
    print("|---|---|---|---|")
    for arm, values in results.items():
        med = statistics.median(values)
        rounds = ", ".join(f"{v * 1000:.2f}" for v in values)
        print(f"| {arm} | {med * 1000:.2f} | {rounds} | {med / args.gpu_step_s:.3%} |")


if __name__ == "__main__":
    main()
