"""What the hosting safeguards cost: the access check on every mutating request, secret scrubbing on every log
record, and the scrub hook on every database write (the training callback writes a metrics row per logged step).

    python bench/hosting_overhead.py [--rows 2000] [--repeat 20000]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat // 5):
            fn()
        samples.append((time.perf_counter() - start) / (repeat // 5) * 1e6)
    return statistics.median(samples)


def db_rows_per_s(rows: int) -> float:
    """Metric rows written one transaction each, as the training callback does."""
    from medcot_ui.store import Metric, write_session

    start = time.perf_counter()
    for step in range(rows):
        with write_session() as s:
            s.add(Metric(run_id=1, step=step, loss=1.0, learning_rate=2e-4, tokens_per_s=300.0))
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20000)
    args = parser.parse_args()
    os.environ.update(MEDCOT_HOME=tempfile.mkdtemp(prefix="medcot-bench-"), HF_TOKEN="hf_" + "b" * 34,
                      WANDB_API_KEY="c" * 40, MEDCOT_AUTH_MODE="space", SPACE_ID="bench/medcot",
                      MEDCOT_ALLOWED_USERS="alice,bob,carol", MEDCOT_ALLOWED_ORGS="medlab")

    from medcot_ui.jobkinds import enqueue
    from medcot_ui.hosting.access import caller_from_oauth, check
    from medcot_ui.training.presets import quick_demo
    from medcot_ui.redact import RedactingFilter, install, scrub
    from medcot_ui.settings import get_settings

    enqueue("train", quick_demo())
    settings = get_settings()
    info = {"access_token": "x", "expires_at": time.time() + 3600,
            "userinfo": {"preferred_username": "dave", "orgs": [{"preferred_username": "medlab"}]}}
    line = "{'loss': 1.2345, 'grad_norm': 0.87, 'learning_rate': 0.0002, 'epoch': 0.35} step 120/500 312.5 tok/s"
    record = logging.LogRecord("transformers", logging.INFO, __file__, 1, "%s", (line,), None)
    redacting = RedactingFilter()
    results = [
        ("get_settings() (env + /proc/self/mounts)", per_call_us(get_settings, args.repeat // 10), "us/call"),
        ("caller from the OAuth session + check()",
         per_call_us(lambda: check(caller_from_oauth(info), "train", settings), args.repeat), "us/call"),
        ("scrub() of a 100-char training log line", per_call_us(lambda: scrub(line), args.repeat), "us/call"),
        ("log filter on one record", per_call_us(lambda: redacting.filter(record), args.repeat), "us/call"),
    ]
    plain = db_rows_per_s(args.rows)
    install()  # adds the before-flush scrub hook (and wraps stdout/stderr: print nothing after this)
    scrubbed = db_rows_per_s(args.rows)
    results += [("metric rows written, no scrub hook", plain, "rows/s"),
                ("metric rows written, scrub hook on", scrubbed, "rows/s")]
    out = sys.__stdout__
    out.write(f"{'what':<45} {'value':>12}  unit\n{'-' * 45} {'-' * 12}  {'-' * 7}\n")
    for what, value, unit in results:
        out.write(f"{what:<45} {value:>12.1f}  {unit}\n")
    out.write(f"scrub hook cost per metric row: {(1 / scrubbed - 1 / plain) * 1e6:.0f} us "
              f"({(plain / scrubbed - 1) * 100:+.1f} %)\n")


if __name__ == "__main__":
    main()
