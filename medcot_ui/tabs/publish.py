"""Publish tab: export a finished run locally and publish it to the Hugging Face Hub (layout and wiring only).

The token comes from the Space's Hugging Face login, HF_TOKEN, or the password field (which policy applies is
``access.publish_token``'s call); it is handed to the publish function and nowhere else: never an output, a log
line or a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from medcot_ui.evaluate import in_card as card_evaluations
from medcot_ui.publish import export as publish
from medcot_ui.publish import records
from medcot_ui.publish import view as publish_view
from medcot_ui.hosting.access import AccessDenied, publish_token
from medcot_ui.hosting.context import AppContext
from medcot_ui.hosting.serving import EXPORT_LANE
from medcot_ui.publish.hub import HubError
from medcot_ui.store import get_run
from medcot_ui.tabs.guard import guard, may
from medcot_ui.tabs.inputs import follow_selected_run, run_id_of
from medcot_ui.tabs.wiring import Updates, bound, unchanged
from medcot_ui.tabs import toast

INTRO = ("Share a finished run. **Export** writes the chosen files to this machine and offers them for download "
         "(the size is shown first); "
         "**Publish** uploads exactly the same files to a Hugging Face repository, with a model card built from "
         "what the run recorded (data, config, losses, saved comparisons, hardware, versions) and its limits: "
         "research use only, not for clinical decisions.")
NO_RUNS = "*No finished run with a saved adapter yet: train one (the Quick demo preset takes about a minute), " \
          "then come back.*"


@dataclass
class PublishTab:
    """The Publish tab's components (what its handlers read and update)."""
    run: gr.Dropdown
    refresh: gr.Button
    run_info: gr.Markdown
    kind: gr.Radio
    gguf_note: gr.Markdown
    export: gr.Button
    export_file: gr.File
    token: gr.Textbox
    repo: gr.Textbox
    private: gr.Checkbox
    update: gr.Checkbox
    check: gr.Button
    publish: gr.Button
    retry: gr.Button
    status: gr.Markdown
    history: gr.Dataframe
    in_card: gr.CheckboxGroup
    preview: gr.Button
    card: gr.Markdown


def build(ctx: AppContext) -> PublishTab:
    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        # Choices are filled per visitor when the page opens; the handlers check the run themselves.
        run = gr.Dropdown(choices=[], value=None, label="Run", scale=4, elem_id="publish-run",
                          allow_custom_value=True, info="A finished run (or a cancelled one that saved its adapter).")
        refresh = gr.Button("Refresh runs", scale=0, size="sm")
    run_info = gr.Markdown(NO_RUNS, elem_id="publish-run-info")
    kinds, gguf_reason = publish_view.kind_choices()
    kind = gr.Radio(kinds, value="adapter", label="What", elem_id="publish-kind")
    gguf_note = gr.Markdown(f"*{gguf_reason}*" if gguf_reason else "", elem_id="publish-gguf-note")
    with gr.Group():
        gr.Markdown("### Export to this machine")
        export = gr.Button("Export locally", elem_id="publish-export")
        export_file = gr.File(label="Download", file_count="multiple", interactive=False, visible=False,
                              elem_id="publish-downloads")
    auth_mode = ctx.settings.auth_mode
    with gr.Group():
        gr.Markdown("### Publish to the Hugging Face Hub")
        gr.Markdown(publish_view.token_help(auth_mode))
        token = gr.Textbox(label="Hugging Face token (write access)", type="password", value="", placeholder="hf_…",
                           visible=auth_mode != "space", elem_id="publish-token")
        repo = gr.Textbox(label="Repository", info="'name' (goes to the token's account) or 'account/name'.",
                          elem_id="publish-repo")
        with gr.Row():
            private = gr.Checkbox(True, label="Private repository", info="Only you (or your organisation) can see "
                                  "it until you make it public on the Hub.")
            update = gr.Checkbox(False, label="Update the repository if it exists",
                                 info="Off: an existing repository is never touched.")
        with gr.Row():
            check = gr.Button("Check token and name", elem_id="publish-check")
            publish_btn = gr.Button("Publish to the Hub", variant="primary", elem_id="publish-go")
            retry = gr.Button("Retry the failed publish", visible=False, elem_id="publish-retry")
    status = gr.Markdown(elem_id="publish-status")
    history = gr.Dataframe(headers=publish_view.HISTORY_HEADERS, value=[], interactive=False, wrap=True,
                           label="Exports and publishes of this run", elem_id="publish-history",
                           column_widths=["5%", "12%", "8%", "25%", "9%", "9%", "10%", "22%"])
    with gr.Accordion("Model card", open=False):
        in_card = gr.CheckboxGroup(choices=[], value=[], label="Evaluations the card reports",
                                   info="Untick a throwaway try to leave it out of every card of this run.",
                                   elem_id="publish-in-card")
        preview = gr.Button("Preview the model card", size="sm", elem_id="publish-preview")
        card = gr.Markdown(elem_id="publish-card")
    ui = PublishTab(run=run, refresh=refresh, run_info=run_info, kind=kind, gguf_note=gguf_note, export=export,
                    export_file=export_file, token=token, repo=repo, private=private, update=update, check=check,
                    publish=publish_btn, retry=retry, status=status, history=history, in_card=in_card,
                    preview=preview, card=card)
    _bind(ui, ctx)
    return ui


# ---- handlers ---------------------------------------------------------------------------------------------

def refresh_runs(ui: PublishTab, current: int | None, request: gr.Request) -> Updates:
    if not may(request, "view_runs"):
        return {ui.run: gr.update(choices=[], value=None),
                ui.run_info: "*Sign in with an allowed account to publish runs.*"}
    choices = publish_view.run_choices()
    ids = [v for _, v in choices]
    value = current if current in ids else (ids[0] if ids else None)
    return {ui.run: gr.update(choices=choices, value=value), **({} if choices else {ui.run_info: NO_RUNS})}


def on_run(ui: PublishTab, run_id: int | None, kind: str) -> Updates:
    run = get_run(run_id_of(run_id)) if run_id is not None else None
    if run is None:
        return {ui.run_info: NO_RUNS, ui.repo: "", ui.history: [], ui.retry: gr.update(visible=False)}
    return {ui.run_info: publish_view.run_summary(run), ui.repo: publish.default_repo_name(run, kind or "adapter"),
            **_record(ui, run.id)}


def on_kind(ui: PublishTab, run_id: int | None, kind: str, repo: str) -> Updates:
    run = get_run(run_id_of(run_id)) if run_id is not None else None
    return unchanged() if run is None else {ui.repo: publish_view.repo_for_kind(run, kind, repo)}


def show_card_choices(ui: PublishTab, run_id: int | None, request: gr.Request) -> Updates:
    if run_id is None or not may(request, "view_runs"):
        return {ui.in_card: gr.update(choices=[], value=[]), ui.card: ""}
    choices, chosen = card_evaluations.card_choices(run_id_of(run_id))
    return {ui.in_card: gr.update(choices=choices, value=chosen), ui.card: ""}


def choose_in_card(ui: PublishTab, run_id: int | None, wanted: list[int] | None, request: gr.Request) -> Updates:
    guard(request, "publish")  # what every later card of the run says
    if run_id is None:
        return unchanged()
    card_evaluations.set_in_card(run_id_of(run_id), [int(v) for v in wanted or []])
    return {ui.card: ""}  # an older preview no longer says what the card will


def preview_card(ui: PublishTab, run_id: int | None, kind: str, repo: str, request: gr.Request) -> Updates:
    guard(request, "view_runs")
    if run_id is None:
        return {ui.card: NO_RUNS}
    return {ui.card: publish_view.card_preview(run_id_of(run_id), kind, (repo or "").strip() or None)}


def check_target(ui: PublishTab, run_id: int | None, repo: str, token: str, request: gr.Request) -> Updates:
    secret = _token(request, token)
    try:
        identity, repo_id = publish.check_token(secret, repo)
    except HubError as exc:
        return {ui.status: publish_view.failure_text(exc)}
    return {ui.status: publish_view.target_text(identity, repo_id), ui.repo: repo_id}


def publish_to_hub(ui: PublishTab, run_id: int | None, kind: str, repo: str, private: bool, update: bool, token: str,
                   request: gr.Request, progress: gr.Progress = gr.Progress()) -> Updates:
    return _publish(ui, run_id, kind, repo, private, update, token, request, progress)


def retry_publish(ui: PublishTab, run_id: int | None, update: bool, token: str, request: gr.Request,
                  progress: gr.Progress = gr.Progress()) -> Updates:
    guard(request, "publish")
    failed = records.last_failed(run_id_of(run_id)) if run_id is not None else None
    if failed is None:
        return {ui.status: "Nothing to retry: the last publish of this run did not fail."}
    if failed.destination != "hub":  # a failed local export: run it again
        return export_locally(ui, run_id, failed.kind, request, progress)
    # A repository the failed attempt created (or chose to update) may be updated by its retry.
    return _publish(ui, run_id, failed.kind, failed.target, bool(failed.private), bool(update or failed.url),
                    token, request, progress)


def export_locally(ui: PublishTab, run_id: int | None, kind: str, request: gr.Request,
                   progress: gr.Progress = gr.Progress()) -> Updates:
    guard(request, "publish")
    if run_id is None:
        raise toast.error("Run: choose a finished run first.")
    try:
        outcome = publish.export_local(run_id_of(run_id), kind, progress=lambda f, d: progress(f, desc=d))
    except publish.PublishError as exc:
        return {ui.status: publish_view.failure_text(exc), ui.export_file: gr.update(visible=False, value=None),
                **_record(ui, run_id_of(run_id))}
    files = gr.update(visible=True, value=[str(d.path) for d in outcome.downloads])
    return {ui.status: publish_view.success_text(outcome), ui.export_file: files,
            **_record(ui, run_id_of(run_id))}


def _record(ui: PublishTab, run_id: int) -> Updates:
    """The run's export and publish history, and the Retry button when its last attempt failed."""
    return {ui.history: publish_view.history_table(run_id),
            ui.retry: gr.update(visible=records.last_failed(run_id) is not None)}


def _token(request: gr.Request, typed: str) -> str:
    caller = guard(request, "publish")
    try:
        return publish_token(caller, typed)
    except AccessDenied as exc:
        # Asking for a token is pointless when the Hub cannot be reached anyway: say that first.
        if (unreachable := publish.hub_unreachable_reason()) is not None:
            raise toast.error(unreachable, title="Cannot reach the Hub") from None
        raise toast.error(str(exc), title="No token") from None


def _publish(ui: PublishTab, run_id: int | None, kind: str, repo: str, private: bool, update: bool, token: str,
             request: gr.Request, progress: gr.Progress) -> Updates:
    secret = _token(request, token)
    if run_id is None:
        raise toast.error("Run: choose a finished run first.")
    try:
        outcome = publish.publish_to_hub(run_id_of(run_id), kind, repo, secret, private=bool(private),
                                         update_existing=bool(update), progress=lambda f, d: progress(f, desc=d))
    except (HubError, publish.PublishError) as exc:
        text = publish_view.failure_text(exc, " Recorded as a failed publish: fix the cause and press Retry.")
        return {ui.status: text, **_record(ui, run_id_of(run_id))}
    return {ui.status: publish_view.success_text(outcome), ui.repo: outcome.repo_id,
            **_record(ui, run_id_of(run_id))}


def _bind(ui: PublishTab, ctx: AppContext) -> None:
    run_menu = [ui.run, ui.run_info]
    ui.refresh.click(bound(refresh_runs, ui), ui.run, run_menu, api_name=False)
    page = gr.context.Context.root_block  # fill the run menu when the page opens, for this visitor
    if page is not None:
        page.load(bound(refresh_runs, ui), ui.run, run_menu, api_name=False)
    ui.run.focus(bound(refresh_runs, ui), ui.run, run_menu, api_name=False)
    ui.run.change(bound(on_run, ui), [ui.run, ui.kind], [ui.run_info, ui.repo, ui.history, ui.retry],
                  api_name=False)
    ui.kind.change(bound(on_kind, ui), [ui.run, ui.kind, ui.repo], ui.repo, api_name=False)
    ui.run.change(bound(show_card_choices, ui), ui.run, [ui.in_card, ui.card], api_name=False)
    ui.in_card.input(bound(choose_in_card, ui), [ui.run, ui.in_card], ui.card, api_name=False)
    ui.preview.click(bound(preview_card, ui), [ui.run, ui.kind, ui.repo], ui.card, api_name=False)
    ui.check.click(bound(check_target, ui), [ui.run, ui.repo, ui.token], [ui.status, ui.repo],
                   api_name="check_publish_target")
    results = [ui.status, ui.history, ui.retry, ui.repo, ui.export_file]
    lane = {"concurrency_id": EXPORT_LANE, "concurrency_limit": ctx.settings.gpu_concurrency}
    ui.publish.click(bound(publish_to_hub, ui), [ui.run, ui.kind, ui.repo, ui.private, ui.update, ui.token],
                     results, api_name="publish_to_hub", **lane)
    ui.retry.click(bound(retry_publish, ui), [ui.run, ui.update, ui.token], results, api_name="retry_publish", **lane)
    ui.export.click(bound(export_locally, ui), [ui.run, ui.kind], results, api_name="export_locally", **lane)


def wire(ui: PublishTab, runs_ui: Any = None, *others: Any) -> None:
    """Follow the Runs tab's selection: a publishable run selected there is preselected here."""
    follow_selected_run(runs_ui, ui.run,
                        lambda request: publish_view.run_choices() if may(request, "view_runs") else None)
