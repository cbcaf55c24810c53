"""MedCoT Studio: ``python app.py`` starts the web app (and, unless told not to, a background worker)."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sqlite3
import subprocess
import sys

from sqlalchemy.exc import DatabaseError
from starlette.middleware import Middleware

from jobs import recovery
from medcot_ui.hosting import serving as hosting
from medcot_ui.hosting.gate import HostingGate
from medcot_ui.publish.records import reap_interrupted as fail_interrupted_publishes
from medcot_ui.hosting.context import AppContext
from medcot_ui.training.models import ensure_demo_model
from medcot_ui.redact import install as install_redaction
from medcot_ui.settings import PROJECT_DIR, database_url, get_settings
from medcot_ui.store import get_engine
from medcot_ui.store_damage import explain


def start_worker() -> subprocess.Popen[bytes]:
    """The background worker, in its own process: training never runs in the web process."""
    proc = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=PROJECT_DIR)

    def _stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the worker marks a running run interrupted (resumable)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    atexit.register(_stop)
    return proc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-worker", action="store_true", help="do not start a background worker "
                        "(run `python -m jobs.worker` yourself)")
    args = parser.parse_args(argv)
    install_redaction()  # before anything can log or print a token
    settings = get_settings()
    if found := hosting.problems(settings):
        sys.exit("MedCoT Studio cannot start:\n- " + "\n- ".join(found))
    recovery.restore_from_bucket(settings)  # a restarted Space: its local disk is empty, the bucket is not
    try:
        get_engine()  # create runs.db and its tables on first start
    except (DatabaseError, sqlite3.DatabaseError) as exc:
        if (damaged := explain(exc, database_url(), settings.home)) is None:
            raise
        sys.exit(f"MedCoT Studio cannot start:\n{damaged}")
    fail_interrupted_publishes()  # publishes the last app left half-way are failed (and can be retried)
    ensure_demo_model()
    previous = recovery.record_start()
    # Which runs were running when the last app stopped: snapshot before our own worker claims anything.
    resumer = recovery.AutoResumer(previous) if settings.auto_resume else None
    if settings.start_worker and not args.no_worker:
        start_worker()
    atexit.register(recovery.record_stopping)  # atexit runs last-in first-out: before the worker is stopped
    if resumer is not None:
        resumer.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run atexit handlers on `kill`
    os.environ.update(hosting.cache_environment(settings))  # before the Blocks read where Gradio's cache is
    # Gradio and the tabs (Compare brings torch) take seconds to import: only now, after the worker started, so
    # that a run queued (or resumed) before this start is already training while the page is built.
    from medcot_ui.tabs.layout import APP_CSS, build_app

    demo = build_app(AppContext(settings))
    demo.queue(**hosting.queue_options(settings)).launch(
        **hosting.launch_options(settings), css_paths=[APP_CSS],
        app_kwargs={"middleware": [Middleware(HostingGate)]})
    print(hosting.started_message(settings), flush=True)
    demo.block_thread()


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
