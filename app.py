"""MedCoT Studio: ``python app.py`` starts the web app (and, unless told not to, a background worker)."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import subprocess
import sys

import gradio as gr
from starlette.middleware import Middleware

from jobs import recovery
from medcot_ui.hosting import serving as hosting
from medcot_ui.hosting.gate import HostingGate
from medcot_ui.publish.records import reap_interrupted as fail_interrupted_publishes
from medcot_ui.hosting.context import AppContext
from medcot_ui.training.models import ensure_demo_model
from medcot_ui.hosting.redact import install as install_redaction
from medcot_ui.hosting.settings import PROJECT_DIR, get_settings
from medcot_ui.store import get_engine
from medcot_ui.tabs import compare, dataset, evaluate, publish, runs, train

APP_CSS = PROJECT_DIR / "medcot_ui" / "tabs" / "app.css"


def build_app(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="MedCoT Studio") as demo:
        gr.Markdown("# MedCoT Studio\nFine-tune a reasoning model on medical chain-of-thought data, watch it "
                    "train, and compare its answers with the base model. Research use only: not for clinical "
                    "decisions.")
        if warning := hosting.storage_warning(ctx.settings):
            gr.Markdown(warning, elem_id="storage-warning")  # above the tabs: seen on every page
        if ctx.settings.auth_mode == "space":
            gr.LoginButton()
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # on a phone every tab stays in sight
            with gr.Tab("Dataset", id="dataset"):
                dataset_ui = dataset.build(ctx)
            with gr.Tab("Train", id="train"):
                train_ui = train.build(ctx)
            with gr.Tab("Runs", id="runs"):
                runs_ui = runs.build(ctx)
            with gr.Tab("Compare", id="compare"):
                compare_ui = compare.build(ctx)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate_ui = evaluate.build(ctx)
            with gr.Tab("Publish", id="publish"):
                publish_ui = publish.build(ctx)
        train.wire(train_ui, runs_ui, tabs)
        runs.wire(runs_ui, train_ui, tabs)
        dataset.wire(dataset_ui, train_ui)
        compare.wire(compare_ui, runs_ui)
        evaluate.wire(evaluate_ui, demo)
        publish.wire(publish_ui, runs_ui)
    return demo


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
    get_engine()  # create runs.db and its tables on first start
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
    demo = build_app(AppContext(settings))
    demo.queue(**hosting.queue_options(settings)).launch(
        **hosting.launch_options(settings), css_paths=[APP_CSS],
        app_kwargs={"middleware": [Middleware(HostingGate)]})


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
