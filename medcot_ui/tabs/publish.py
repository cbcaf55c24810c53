"""Publish tab: export a finished run locally and publish it to the Hugging Face Hub (layout and wiring only).

The token comes from the Space's Hugging Face login, HF_TOKEN, or the password field (which policy applies is
``access.publish_token``'s call); it is handed to the publish function and nowhere else: never an output, a log
line or a row.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from medcot_ui.publish import export as publish

from medcot_ui.publish import view as publish_view
from medcot_ui.hosting.access import AccessDenied, publish_token
from medcot_ui.hosting.context import AppContext
from medcot_ui.hosting.serving import EXPORT_LANE
from medcot_ui.publish.hub import HubError
from medcot_ui.hosting.settings import get_settings
from medcot_ui.store import get_run
from medcot_ui.tabs.guard import guard, may
from medcot_ui.tabs.inputs import follow_selected_run, run_id_of

INTRO = ("Share a finished run. **Export** writes the chosen files to this machine (the adapter also as a zip); "
         "**Publish** uploads exactly the same files to a Hugging Face repository, with a model card built from "
         "what the run recorded (data, config, losses, saved comparisons, hardware, versions) and its limits: "
         "research use only, not for clinical decisions.")
NO_RUNS = "*No finished run with a saved adapter yet: train one (the Quick demo preset takes about a minute), " \
          "then come back.*"


def build(ctx: AppContext) -> dict[str, Any]:
    ui: dict[str, Any] = {}
    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        # Choices are filled per visitor when the page opens; the handlers check the run themselves.
        ui["run"] = gr.Dropdown(choices=[], value=None, label="Run", scale=4, elem_id="publish-run",
                                allow_custom_value=True,
                                info="A finished run (or a cancelled one that saved its adapter).")
        ui["refresh"] = gr.Button("Refresh runs", scale=0, size="sm")
    ui["run_info"] = gr.Markdown(NO_RUNS, elem_id="publish-run-info")
    kinds, gguf_reason = publish_view.kind_choices()
    ui["kind"] = gr.Radio(kinds, value="adapter", label="What", elem_id="publish-kind")
    ui["gguf_note"] = gr.Markdown(f"*{gguf_reason}*" if gguf_reason else "", elem_id="publish-gguf-note")
    with gr.Group():
        gr.Markdown("### Export to this machine")
        ui["export"] = gr.Button("Export locally", elem_id="publish-export")
        ui["export_file"] = gr.File(label="Adapter zip", interactive=False, visible=False, elem_id="publish-zip")
    with gr.Group():
        gr.Markdown("### Publish to the Hugging Face Hub")
        ui["token_help"] = gr.Markdown(publish_view.token_help(get_settings().auth_mode))
        ui["token"] = gr.Textbox(label="Hugging Face token (write access)", type="password", value="",
                                 placeholder="hf_…", visible=get_settings().auth_mode != "space",
                                 elem_id="publish-token")
        ui["repo"] = gr.Textbox(label="Repository", info="'name' (goes to the token's account) or 'account/name'.",
                                elem_id="publish-repo")
        with gr.Row():
            ui["private"] = gr.Checkbox(True, label="Private repository", info="Only you (or your organisation) "
                                        "can see it until you make it public on the Hub.")
            ui["update"] = gr.Checkbox(False, label="Update the repository if it exists",
                                       info="Off: an existing repository is never touched.")
        with gr.Row():
            ui["check"] = gr.Button("Check token and name", elem_id="publish-check")
            ui["publish"] = gr.Button("Publish to the Hub", variant="primary", elem_id="publish-go")
            ui["retry"] = gr.Button("Retry the failed publish", visible=False, elem_id="publish-retry")
    ui["status"] = gr.Markdown(elem_id="publish-status")
    ui["history"] = gr.Dataframe(headers=publish_view.HISTORY_HEADERS, value=[], interactive=False, wrap=True,
                                 label="Exports and publishes of this run", elem_id="publish-history",
                                 column_widths=["5%", "12%", "8%", "25%", "9%", "9%", "10%", "22%"])
    _bind(ui)
    return ui


def _retry_visible(run_id: int | None) -> Any:
    return gr.update(visible=run_id is not None and publish.last_failed(run_id_of(run_id)) is not None)


def _bind(ui: dict[str, Any]) -> None:
    def refresh_runs(current: int | None, request: gr.Request) -> tuple[Any, Any]:
        if not may(request, "view_runs"):
            return gr.update(choices=[], value=None), "*Sign in with an allowed account to publish runs.*"
        choices = publish_view.run_choices()
        ids = [v for _, v in choices]
        value = current if current in ids else (ids[0] if ids else None)
        return gr.update(choices=choices, value=value), (gr.skip() if choices else NO_RUNS)

    def on_run(run_id: int | None, kind: str) -> tuple[Any, ...]:
        run = get_run(run_id_of(run_id)) if run_id is not None else None
        if run is None:
            return NO_RUNS, "", [], gr.update(visible=False)
        return (publish_view.run_summary(run), publish.default_repo_name(run, kind or "adapter"),
                publish_view.history_table(run.id), _retry_visible(run.id))

    def on_kind(run_id: int | None, kind: str, repo: str) -> Any:
        run = get_run(run_id_of(run_id)) if run_id is not None else None
        if run is None:
            return gr.skip()
        return publish_view.repo_for_kind(run, kind, repo)

    def _token(request: gr.Request, typed: str) -> str:
        caller = guard(request, "publish")
        try:
            return publish_token(caller, typed)
        except AccessDenied as exc:
            # Asking for a token is pointless when the Hub cannot be reached anyway: say that first.
            if (unreachable := publish.hub_unreachable_reason()) is not None:
                raise gr.Error(unreachable, title="Cannot reach the Hub") from None
            raise gr.Error(str(exc), title="No token") from None

    def check_target(run_id: int | None, repo: str, token: str, request: gr.Request) -> tuple[str, Any]:
        secret = _token(request, token)
        try:
            identity, repo_id = publish.check_token(secret, repo)
        except HubError as exc:
            return publish_view.failure_text(exc), gr.skip()
        return publish_view.target_text(identity, repo_id), repo_id

    def _publish(run_id: int | None, kind: str, repo: str, private: bool, update: bool, token: str,
                 request: gr.Request, progress: gr.Progress) -> tuple[Any, ...]:
        secret = _token(request, token)
        if run_id is None:
            raise gr.Error("Run: choose a finished run first.")
        try:
            outcome = publish.publish_to_hub(run_id_of(run_id), kind, repo, secret, private=bool(private),
                                             update_existing=bool(update),
                                             progress=lambda f, d: progress(f, desc=d))
            text, repo_value = publish_view.success_text(outcome), outcome.repo_id
        except (HubError, publish.PublishError) as exc:
            text = publish_view.failure_text(exc, " Recorded as a failed publish: fix the cause and press Retry.")
            repo_value = gr.skip()
        return text, publish_view.history_table(run_id_of(run_id)), _retry_visible(run_id_of(run_id)), repo_value

    def publish_to_hub(run_id: int | None, kind: str, repo: str, private: bool, update: bool, token: str,
                       request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        return _publish(run_id, kind, repo, private, update, token, request, progress)

    def retry_publish(run_id: int | None, update: bool, token: str, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        guard(request, "publish")
        failed = publish.last_failed(run_id_of(run_id)) if run_id is not None else None
        if failed is None or failed.destination != "hub":
            if failed is not None:  # a failed local export: run it again
                return export_locally(run_id, failed.kind, request, progress)[:3] + (gr.skip(),)
            return "Nothing to retry: the last publish of this run did not fail.", gr.skip(), gr.skip(), gr.skip()
        # A repository the failed attempt created (or chose to update) may be updated by its retry.
        return _publish(run_id, failed.kind, failed.target, bool(failed.private), bool(update or failed.url),
                        token, request, progress)

    def export_locally(run_id: int | None, kind: str, request: gr.Request,
                       progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        guard(request, "publish")
        if run_id is None:
            raise gr.Error("Run: choose a finished run first.")
        try:
            outcome = publish.export_local(run_id_of(run_id), kind, progress=lambda f, d: progress(f, desc=d))
        except publish.PublishError as exc:
            return (publish_view.failure_text(exc), publish_view.history_table(run_id_of(run_id)),
                    _retry_visible(run_id_of(run_id)), gr.update(visible=False, value=None))
        zip_update = (gr.update(visible=True, value=str(outcome.zip_path)) if outcome.zip_path
                      else gr.update(visible=False, value=None))
        return (publish_view.success_text(outcome), publish_view.history_table(run_id_of(run_id)),
                _retry_visible(run_id_of(run_id)), zip_update)

    run_outputs = [ui["run_info"], ui["repo"], ui["history"], ui["retry"]]
    result = [ui["status"], ui["history"], ui["retry"]]
    ui["refresh"].click(refresh_runs, ui["run"], [ui["run"], ui["run_info"]], api_name=False)
    page = gr.context.Context.root_block  # fill the run menu when the page opens, for this visitor
    if page is not None:
        page.load(refresh_runs, ui["run"], [ui["run"], ui["run_info"]], api_name=False)
    ui["run"].focus(refresh_runs, ui["run"], [ui["run"], ui["run_info"]], api_name=False)
    ui["run"].change(on_run, [ui["run"], ui["kind"]], run_outputs, api_name=False)
    ui["kind"].change(on_kind, [ui["run"], ui["kind"], ui["repo"]], ui["repo"], api_name=False)
    ui["check"].click(check_target, [ui["run"], ui["repo"], ui["token"]], [ui["status"], ui["repo"]],
                      api_name="check_publish_target")
    lane = {"concurrency_id": EXPORT_LANE, "concurrency_limit": get_settings().gpu_concurrency}
    ui["publish"].click(publish_to_hub, [ui["run"], ui["kind"], ui["repo"], ui["private"], ui["update"],
                                         ui["token"]], result + [ui["repo"]], api_name="publish_to_hub", **lane)
    ui["retry"].click(retry_publish, [ui["run"], ui["update"], ui["token"]], result + [ui["repo"]],
                      api_name="retry_publish", **lane)
    ui["export"].click(export_locally, [ui["run"], ui["kind"]], result + [ui["export_file"]],
                       api_name="export_locally", **lane)


def wire(ui: dict[str, Any], runs_ui: dict[str, Any] | None = None, *others: Any) -> None:
    """Follow the Runs tab's selection: a publishable run selected there is preselected here."""
    follow_selected_run(runs_ui, ui["run"],
                        lambda request: publish_view.run_choices() if may(request, "view_runs") else None)
