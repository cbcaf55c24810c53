"""Runs tab: the live table of runs and one run's charts, progress, log, config, error and files, with actions.

Layout and wiring only; every query and text comes from ``medcot_ui.runs`` (table, charts, detail). A 1-second
timer reads cheap signatures and redraws only what changed (charts only when a new step was logged).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

import jobs.queue as queue
from medcot_ui.training import form
from medcot_ui.runs import charts as run_charts, detail as one_run, table as runs_table
from medcot_ui.training.config import ConfigError
from medcot_ui.hosting.context import AppContext
from medcot_ui.hosting.settings import get_settings
from medcot_ui.store import get_run
from medcot_ui.tabs.guard import guard, may
from medcot_ui.units import duration

POLL_SECONDS = 1.0
EMPTY_HEADER = ("Select a run in the table to see its charts, progress, log and files. No runs yet? Launch one "
                "from the **Train** tab: the *Quick demo (CPU)* preset trains in seconds, offline.")
NOT_ALLOWED = "Sign in with an allowed account to see the runs."
CHARTS = (("loss", "Loss (train, eval)"), ("learning_rate", run_charts.LR_TITLE), ("grad_norm", "Grad norm"),
          ("tokens_per_s", "Tokens/s"))
# Fixed colours for the two loss series. Short axis labels: the plots clip labels longer than about four
# characters, so tokens/s read "12k" (learning rates are plotted in units of 1e-4, see run_charts.LR_UNIT).
CHART_OPTIONS: dict[str, dict[str, Any]] = {
    "loss": {"color": "series", "color_map": {run_charts.TRAIN_LOSS: "#2563eb", run_charts.EVAL_LOSS: "#ea580c"}},
    "tokens_per_s": {"y_axis_format": "~s"},
}


def build(ctx: AppContext) -> dict[str, Any]:
    ui: dict[str, Any] = {
        "selected_run": gr.State(None),
        "table_sig": gr.State(None), "run_sig": gr.State(None), "metric_sig": gr.State(None),
        "timer": gr.Timer(POLL_SECONDS),
    }
    gr.Markdown("Every run, newest first. Click a row to follow it; everything here is read from the run "
                "database, so reloading the page or restarting the app loses nothing.")
    ui["table"] = gr.Dataframe(headers=runs_table.TABLE_COLUMNS, column_widths=runs_table.TABLE_WIDTHS,
                               interactive=False, wrap=True, max_height=360,
                               elem_id="runs-table", label="Runs", show_label=False)
    ui["header"] = gr.Markdown(EMPTY_HEADER, elem_id="run-header")
    ui["progress"] = gr.HTML(elem_id="run-progress")
    ui["perf"] = gr.Markdown(elem_id="run-perf")
    ui["error"] = gr.Markdown(elem_id="run-error")
    with gr.Row():
        ui["cancel"] = gr.Button("Cancel run", variant="stop", interactive=False, elem_id="run-cancel")
        ui["resume"] = gr.Button("Resume from last checkpoint", interactive=False, elem_id="run-resume")
        ui["clone"] = gr.Button("Clone config into Train", interactive=False, elem_id="run-clone")
        ui["delete"] = gr.Button("Delete run and files", interactive=False, elem_id="run-delete")
    with gr.Row(visible=False, elem_id="confirm-cancel-row") as ui["confirm_cancel_row"]:
        ui["confirm_cancel_text"] = gr.Markdown()
        ui["confirm_cancel"] = gr.Button("Yes, cancel it", variant="stop", elem_id="confirm-cancel")
        ui["keep_running"] = gr.Button("No, keep it", elem_id="confirm-cancel-no")
    with gr.Row(visible=False, elem_id="confirm-delete-row") as ui["confirm_delete_row"]:
        ui["confirm_delete_text"] = gr.Markdown()
        ui["confirm_delete"] = gr.Button("Yes, delete it", variant="stop", elem_id="confirm-delete")
        ui["keep_files"] = gr.Button("No, keep it", elem_id="confirm-delete-no")
    with gr.Row():
        ui["action_msg"] = gr.Markdown(elem_id="run-action-msg")
        ui["undo_delete"] = gr.Button("Undo", visible=False, size="sm", scale=0, elem_id="run-undo-delete")
    ui["last_deleted"] = gr.State(None)
    for i in range(0, len(CHARTS), 2):
        with gr.Row():
            for key, title in CHARTS[i:i + 2]:
                ui[f"chart_{key}"] = gr.LinePlot(x="step", y="value", title=title, x_title="step", y_title=title,
                                                 height=240, elem_id=f"chart-{key.replace('_', '-')}",
                                                 **CHART_OPTIONS.get(key, {}))
    with gr.Accordion("Log (events and the end of train.log)", open=True):
        ui["log"] = gr.Code(language="shell", lines=12, max_lines=25, interactive=False, wrap_lines=True,
                            elem_id="run-log")
    with gr.Accordion("Resolved config", open=False):
        ui["config"] = gr.Code(language="yaml", max_lines=40, interactive=False, elem_id="run-config")
    with gr.Accordion("Files on disk", open=False):
        ui["artifacts"] = gr.Markdown(elem_id="run-artifacts")
    with gr.Accordion("Recently deleted runs", open=False, elem_id="runs-deleted") as ui["deleted_box"]:
        gr.Markdown(f"Deleted runs stay restorable for {duration(ctx.settings.undo_seconds)}; "
                    "after that the worker removes their files for good.")
        with gr.Row():
            ui["deleted_list"] = gr.Dropdown(choices=[], label="Deleted run", scale=4, elem_id="runs-deleted-list")
            ui["restore"] = gr.Button("Restore", scale=1, elem_id="runs-restore")
    return ui


# ---- rendering --------------------------------------------------------------------------------------------

def _detail_outputs(ui: dict[str, Any]) -> list[Any]:
    return [ui["header"], ui["progress"], ui["perf"], ui["error"], ui["cancel"], ui["resume"], ui["clone"],
            ui["delete"], ui["log"], ui["config"], ui["artifacts"]]


def _chart_outputs(ui: dict[str, Any]) -> list[Any]:
    return [ui[f"chart_{key}"] for key, _ in CHARTS]


def _empty_detail(header: str) -> list[Any]:
    off = gr.Button(interactive=False)
    return [header, "", "", "", off, off, off, off, "", "", ""]


def _empty_charts() -> list[Any]:
    frames = run_charts.chart_frames([])  # typed empty frames: the plots keep numeric axes for later data
    return [frames[key] for key, _ in CHARTS]


def _render(run_id: int | None, with_charts: bool) -> tuple[list[Any], list[Any]]:
    """(detail values, chart values) for one run; chart values are skips unless ``with_charts``."""
    detail = one_run.run_detail(run_id, with_charts=with_charts) if run_id is not None else None
    if detail is None:
        header = EMPTY_HEADER if run_id is None else f"Run {run_id} no longer exists (it was deleted)."
        return _empty_detail(header), _empty_charts()
    run = detail.run
    values = [detail.header, one_run.progress_html(detail.progress), detail.perf.describe(run.device),
              f"**{one_run.error_heading(run.status)}** {detail.error}" if detail.error else "",
              gr.Button(interactive=detail.can_cancel), gr.Button(interactive=detail.can_resume),
              gr.Button(interactive=True), gr.Button(interactive=detail.can_delete),
              one_run.log_tail(run), detail.config_yaml, one_run.artifacts_markdown(run)]
    charts = [detail.charts[key] for key, _ in CHARTS] if with_charts else [gr.skip()] * len(CHARTS)
    return values, charts


def wire(runs_ui: dict[str, Any], train_ui: dict[str, Any], tabs: gr.Tabs) -> None:
    ui = runs_ui
    detail_outputs, chart_outputs = _detail_outputs(ui), _chart_outputs(ui)
    sig_outputs = [ui["run_sig"], ui["metric_sig"]]

    def tick(selected: int | None, table_sig: Any, run_sig: Any, metric_sig: Any,
             request: gr.Request) -> list[Any]:
        if not may(request, "view_runs"):
            return [gr.skip()] * (2 + len(detail_outputs) + len(chart_outputs) + 2) if table_sig == "denied" else \
                [[], "denied", *_empty_detail(NOT_ALLOWED), *_empty_charts(), None, None]
        new_table_sig = runs_table.table_signature()
        table = runs_table.table_frame() if new_table_sig != table_sig else gr.skip()
        new_run_sig, new_metric_sig = one_run.run_signature(selected), run_charts.metric_signature(selected)
        if selected is None or (new_run_sig == run_sig and new_metric_sig == metric_sig):
            rest = [gr.skip()] * (len(detail_outputs) + len(chart_outputs))
        else:
            values, charts = _render(selected, with_charts=new_metric_sig != metric_sig)
            rest = values + charts
        return [table, new_table_sig, *rest, new_run_sig, new_metric_sig]

    ui["timer"].tick(tick, [ui["selected_run"], ui["table_sig"], ui["run_sig"], ui["metric_sig"]],
                     [ui["table"], ui["table_sig"], *detail_outputs, *chart_outputs, *sig_outputs],
                     show_progress="hidden", api_name="poll_runs", concurrency_limit=None)

    def show(run_id: int | None, request: gr.Request) -> list[Any]:
        if not may(request, "view_runs"):
            return [*_empty_detail(NOT_ALLOWED), *_empty_charts(), None, None, gr.Row(visible=False),
                    gr.Row(visible=False)]
        sigs = [one_run.run_signature(run_id), run_charts.metric_signature(run_id)]  # before rendering, as above
        values, charts = _render(run_id, with_charts=True)
        return [*values, *charts, *sigs, gr.Row(visible=False), gr.Row(visible=False)]

    # The action message is left alone here: delete and restore change the selection and say what they did.
    ui["selected_run"].change(show, ui["selected_run"],
                              [*detail_outputs, *chart_outputs, *sig_outputs, ui["confirm_cancel_row"],
                               ui["confirm_delete_row"]],
                              show_progress="hidden", api_name="show_run")

    def select(evt: gr.SelectData) -> Any:
        row = evt.row_value or []
        try:
            return int(row[0]), ""  # a click on another run clears the last action's message
        except (IndexError, TypeError, ValueError):
            return gr.skip(), gr.skip()

    ui["table"].select(select, None, [ui["selected_run"], ui["action_msg"]], show_progress="hidden",
                       api_name="select_run")

    # -- cancel and delete ask first; the confirming click is the guarded action --
    def ask(kind: str) -> Any:
        def prompt(run_id: int | None, request: gr.Request) -> list[Any]:
            run = get_run(run_id) if run_id is not None and may(request, "view_runs") else None
            if run is None or run.deleted:
                return [gr.Row(visible=False), ""]
            text = one_run.confirm_text(kind, run, get_settings().undo_seconds)
            return [gr.Row(visible=True), f"**{text}**"]
        return prompt

    # (api names avoid the action words: asking is not doing; access.action_for_endpoint reads them)
    for kind, word in (("cancel", "stop"), ("delete", "erase")):
        ui[kind].click(ask(kind), ui["selected_run"], [ui[f"confirm_{kind}_row"], ui[f"confirm_{kind}_text"]],
                       show_progress="hidden", api_name=f"prompt_{word}_confirmation")
    ui["keep_running"].click(lambda: gr.Row(visible=False), None, ui["confirm_cancel_row"],
                             show_progress="hidden", api_name="close_stop_prompt")
    ui["keep_files"].click(lambda: gr.Row(visible=False), None, ui["confirm_delete_row"],
                           show_progress="hidden", api_name="close_erase_prompt")

    def refreshed(run_id: int | None, message: str) -> list[Any]:
        # Signatures before rendering: a change that lands in between is then seen by the next poll, instead of
        # a stale render being stored under the newer signature and never redrawn.
        sigs = [one_run.run_signature(run_id), run_charts.metric_signature(run_id)]
        table_sig = runs_table.table_signature()
        values, charts = _render(run_id, with_charts=True)
        return [*values, *charts, *sigs, runs_table.table_frame(), table_sig, message]

    after_action = [*detail_outputs, *chart_outputs, *sig_outputs, ui["table"], ui["table_sig"], ui["action_msg"]]

    def act(request: gr.Request, action: str, run_id: int | None, step: Any) -> Any:
        """Check the caller, then run one queue action on the selected run; refusals become plain messages."""
        guard(request, action)
        if run_id is None:
            raise gr.Error("Select a run first.")
        try:
            return step(run_id)
        except queue.QueueError as exc:
            raise gr.Error(str(exc)) from None

    def cancel_run(run_id: int | None, request: gr.Request) -> list[Any]:
        state = act(request, "cancel", run_id, queue.request_cancel)
        message = (f"Run {run_id} cancelled." if state == "cancelled" else
                   f"Cancel requested for run {run_id}: it stops at its next step and saves its adapter (the "
                   "status above says when it has).")
        return [gr.Row(visible=False), *refreshed(run_id, message)]

    ui["confirm_cancel"].click(cancel_run, ui["selected_run"], [ui["confirm_cancel_row"], *after_action],
                               api_name="cancel_run")

    def delete_run(run_id: int | None, request: gr.Request) -> list[Any]:
        act(request, "delete", run_id, queue.delete_run)
        message = one_run.deleted_message(run_id, get_settings().undo_seconds)
        return [gr.Row(visible=False), None, run_id, gr.Button(visible=True),
                gr.Dropdown(choices=one_run.deleted_choices(), value=None), *refreshed(None, message)]

    undo_outputs = [ui["last_deleted"], ui["undo_delete"], ui["deleted_list"]]
    ui["confirm_delete"].click(delete_run, ui["selected_run"],
                               [ui["confirm_delete_row"], ui["selected_run"], *undo_outputs, *after_action],
                               api_name="delete_run")

    def restore_run(run_id: int | None, request: gr.Request) -> list[Any]:
        guard(request, "delete")  # before anything else: a refused caller learns nothing
        if run_id is None:
            return [gr.skip()] * (3 + len(after_action)) + ["Choose a run in *Deleted run* first, then Restore."]
        run = act(request, "delete", run_id, queue.restore_run)
        return [run_id, None, gr.Button(visible=False), gr.Dropdown(choices=one_run.deleted_choices(), value=None),
                *refreshed(run_id, one_run.restored_message(run))]

    for button, source in ((ui["undo_delete"], ui["last_deleted"]), (ui["restore"], ui["deleted_list"])):
        button.click(restore_run, source, [ui["selected_run"], *undo_outputs, *after_action],
                     api_name="restore_run" if button is ui["restore"] else "undo_delete")
    def list_deleted(request: gr.Request) -> Any:
        return gr.Dropdown(choices=one_run.deleted_choices() if may(request, "view_runs") else [], value=None)

    ui["deleted_box"].expand(list_deleted, None, ui["deleted_list"], show_progress="hidden", api_name=False)

    def resume_run(run_id: int | None, request: gr.Request) -> list[Any]:
        act(request, "resume", run_id, queue.resume)
        return refreshed(run_id, f"Run {run_id} is queued again; it continues from its last checkpoint.")

    ui["resume"].click(resume_run, ui["selected_run"], after_action, api_name="resume_run")

    fields = train_ui["fields"]
    paths = list(fields)

    def clone(run_id: int | None, request: gr.Request) -> list[Any]:
        guard(request, "view_runs")  # read-only, but it shows the run's settings
        run = get_run(run_id) if run_id is not None else None
        if run is None or run.deleted:
            raise gr.Error("Select a run first.")
        try:
            config = run.run_config().with_overrides({"name": f"{run.name}-copy"[:100]})
        except ConfigError as exc:  # a run saved by an older schema: say which settings no longer fit
            raise gr.Error("This run's config no longer validates: " + "; ".join(exc.errors)) from None
        values = form.config_to_values(config)
        return [values[p] for p in paths] + [gr.Tabs(selected="train"),
                                             f"Run {run.id}'s settings are in the Train form as '{config.name}'."]

    ui["clone"].click(clone, ui["selected_run"], [*(fields[p] for p in paths), tabs, train_ui["launch_msg"]],
                      api_name="clone_run")
