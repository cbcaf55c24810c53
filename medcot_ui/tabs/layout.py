"""The whole page: title, storage banner, one tab per module, and the wiring between the tabs."""

from __future__ import annotations

import gradio as gr

from medcot_ui.hosting import storage_status
from medcot_ui.hosting.context import AppContext
from medcot_ui.settings import PROJECT_DIR
from medcot_ui.tabs import compare, dataset, evaluate, hosting, publish, runs, train

APP_CSS = PROJECT_DIR / "medcot_ui" / "tabs" / "app.css"


def build_app(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="MedCoT Studio") as demo:
        gr.Markdown("# MedCoT Studio\nFine-tune a reasoning model on medical chain-of-thought data, watch it "
                    "train, and compare its answers with the base model. Research use only: not for clinical "
                    "decisions.")
        if storage := storage_status.banner(ctx.settings):  # above the tabs: seen on every page
            banner = gr.Markdown(storage.text, elem_id="storage-warning" if storage.warning else "storage-status")
            # Each page load reads the time of the last snapshot again (a small local file).
            demo.load(lambda: storage_status.status(ctx.settings).text, None, banner, api_name=False,
                      show_progress="hidden")
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
            with gr.Tab("Hosting", id="hosting") as hosting_tab:
                hosting_ui = hosting.build(ctx)
        train.wire(train_ui, runs_ui, tabs)
        runs.wire(runs_ui, train_ui, tabs)
        dataset.wire(dataset_ui, train_ui)
        compare.wire(compare_ui, runs_ui)
        evaluate.wire(evaluate_ui, demo)
        publish.wire(publish_ui, runs_ui)
        hosting.wire(hosting_ui, hosting_tab)
    return demo
