"""What the queue and worker cost: the demo config through `medcot enqueue` + a running worker vs `medcot train`.

Alternates A B A B in one launch on a fresh data directory and prints a table:

    python bench/queue_overhead.py [--rounds 3] [--steps 30]

"queued" is the run row's creation (the enqueue, as the app's Launch does it in-process) -> run succeeded, with
a worker already waiting; "direct" is the wall time of `medcot train` (which also records the run). "first step"
is enqueue -> first metrics row written.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="medcot-bench-"))
    env = dict(os.environ, MEDCOT_HOME=str(home), MEDCOT_POLL_SECONDS="1.0", PYTHONUNBUFFERED="1")
    os.environ.update(MEDCOT_HOME=str(home))
    from medcot_ui.training.models import ensure_demo_model
    from medcot_ui.training.presets import quick_demo
    from medcot_ui.store import get_run, read_session, Metric
    from sqlmodel import select

    ensure_demo_model()
    cfg = home / "demo.yaml"
    cfg.write_text(quick_demo().with_overrides({"training.max_steps": args.steps}).to_yaml())
    cli = [sys.executable, "-m", "medcot"]
    worker = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(8)  # let the worker finish importing, as an app's worker would have long ago
    queued, direct, first_step = [], [], []
    try:
        for _ in range(args.rounds):
            out = subprocess.run([*cli, "enqueue", str(cfg)], cwd=ROOT, env=env, capture_output=True, text=True,
                                 check=True)
            run_id = int(out.stdout.split("queued run ")[1].split()[0])
            while get_run(run_id).status in {"queued", "running"}:
                time.sleep(0.05)
            run = get_run(run_id)
            assert run.status == "succeeded", run.error
            queued.append(run.finished_at - run.created_at)
            with read_session() as s:
                first = s.exec(select(Metric).where(Metric.run_id == run_id).order_by(Metric.step)).first()
            first_step.append(first.created_at - run.created_at)

            t0 = time.perf_counter()
            subprocess.run([*cli, "train", str(cfg)], cwd=ROOT, env=env, capture_output=True, check=True)
            direct.append(time.perf_counter() - t0)
    finally:
        worker.terminate()
        worker.wait()
    q, d, f = statistics.median(queued), statistics.median(direct), statistics.median(first_step)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print(f"demo config, {args.steps} steps, {args.rounds} rounds alternating (medians)\n")
    print("| path | wall s | per round |")
    print("|---|---|---|")
    print(f"| queued (enqueue -> succeeded, worker waiting) | {q:.2f} | {', '.join(f'{x:.2f}' for x in queued)} |")
    print(f"| direct (`medcot train`) | {d:.2f} | {', '.join(f'{x:.2f}' for x in direct)} |")
    print(f"| enqueue -> first training step | {f:.2f} | {', '.join(f'{x:.2f}' for x in first_step)} |")
    print(f"\nratio queued / direct: {q / d:.3f} (goal < 1.05)")


if __name__ == "__main__":
    main()
