"""Bucket snapshot cost: 1,000 runs and 100,000 metric rows in a SQLite file, snapshotted to a mount folder.

Times a whole snapshot (online backup to local disk, integrity check, copy to the mount, manifest, pruning) and
restoring one, then the app's responsiveness while snapshots run back to back in another process (as the
worker's keeper does): the Runs tab's table query and a metric write (what a training step does), each timed
idle and during snapshots.

    python bench/snapshot_cost.py [--runs 1000] [--metrics 100000] [--repeat 5] [--mount DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runs_queries import populate, timed  # noqa: E402


def snapshot_forever(db: str, mount: str, started: multiprocessing.Event) -> None:
    from medcot_ui.hosting import snapshots

    started.set()
    while True:
        snapshots.take(Path(db), Path(mount))


def write_metric(run_id: int):
    from medcot_ui.store import Metric, write_session

    def write() -> None:
        with write_session() as s:
            s.add(Metric(run_id=run_id, step=10_000 + int(time.time() * 1000) % 1_000_000))
    return write


def snapshot_seconds(db: Path, mount: Path, repeat: int) -> tuple[float, float, float]:
    """(median seconds of a snapshot, median seconds of a restore, snapshot MB)."""
    from medcot_ui.hosting import snapshots

    takes, restores = [], []
    for i in range(repeat):
        t0 = time.perf_counter()
        taken = snapshots.take(db, mount)
        takes.append(time.perf_counter() - t0)
        target = db.parent / f"restored-{i}.db"
        t0 = time.perf_counter()
        snapshots.restore(target, mount)
        restores.append(time.perf_counter() - t0)
        target.unlink()
    return statistics.median(takes), statistics.median(restores), taken.size / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="snapshots (and restores) timed")
    parser.add_argument("--queries", type=int, default=30, help="queries timed idle and during snapshots")
    parser.add_argument("--mount", help="the bucket mount to write to (default: a temporary folder)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="medcot-bench-"))
    mount = Path(args.mount or tempfile.mkdtemp(prefix="medcot-bench-mount-"))
    os.environ["MEDCOT_HOME"] = str(home)
    os.environ.pop("MEDCOT_DATABASE_URL", None)

    from medcot_ui.runs import table as runs_table

    typical, _ = populate(args.runs, args.metrics)
    db = home / "runs.db"
    take_s, restore_s, size_mb = snapshot_seconds(db, mount, args.repeat)
    print(f"store: {args.runs:,} runs, {args.metrics:,} metric rows; snapshot {size_mb:.1f} MB")
    print(f"snapshot (backup + integrity check + copy + manifest + prune): {take_s:.2f} s median of {args.repeat}")
    print(f"restore (verify checksum + copy + integrity check): {restore_s:.2f} s median of {args.repeat}\n")

    cases = [(f"table: {runs_table.TABLE_LIMIT} newest + active runs", runs_table.table_frame),
             ("write: one metric row (a training step)", write_metric(typical))]
    idle = {name: timed(fn, args.queries) for name, fn in cases}
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=snapshot_forever, args=(str(db), str(mount), started), daemon=True)
    proc.start()
    started.wait(120)
    time.sleep(1.0)  # the first snapshot under way
    try:
        during = {name: timed(fn, args.queries) for name, fn in cases}
    finally:
        proc.kill()
        proc.join()
    width = max(len(name) for name, _ in cases)
    print(f"| {'while snapshots run back to back'.ljust(width)} | idle median / p95 ms | during median / p95 ms |")
    print(f"|{'-' * (width + 2)}|----------------------|------------------------|")
    for name, _ in cases:
        (m0, p0), (m1, p1) = idle[name], during[name]
        print(f"| {name.ljust(width)} | {m0:8.1f} / {p0:8.1f}  | {m1:9.1f} / {p1:9.1f}   |")


if __name__ == "__main__":
    main()
