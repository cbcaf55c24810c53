"""Runs tab: the live table of runs and one run's charts, progress, log, config, error and files, with actions.

Layout and wiring only; every query and text comes from ``medcot_ui.runs`` (table, charts, detail). A 1-second
timer reads cheap signatures and redraws only what changed (charts only when a new step was logged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

import jobs.queue as queue
from medcot_ui.training import form
from medcot_ui.runs import charts as run_charts, detail as one_run, extra_metrics, table as runs_table
from medcot_ui.runs.compact import compact_choices
from medcot_ui.training.config import ConfigError
from medcot_ui.hosting.context import AppContext
from medcot_ui.settings import get_settings
from medcot_ui.store import get_run
from medcot_ui.tabs.guard import guard, may
from medcot_ui.tabs.wiring import Updates, bound, unchanged
from medcot_ui.units import duration
from medcot_ui.tabs import toast

POLL_SECONDS = 1.0
EMPTY_HEADER = ("Select a run in the table to see its charts, progress, log and files. No runs yet? Launch one "
                "from the **Train** tab: the *Quick demo (CPU)* preset trains in seconds, offline.")
NOT_ALLOWED = "Sign in with an allowed account to see the runs."
NO_MORE_METRICS = "More metrics (none logged yet)"
CHARTS = (("loss", run_charts.loss_title(True)), ("learning_rate", run_charts.LR_TITLE), ("grad_norm", "Grad norm"),
          ("tokens_per_s", "Tokens/s"))
# Fixed colours for the two loss series. Short axis labels: the plots clip labels longer than about four
# characters, so tokens/s read "12k" (learning rates are plotted in units of 1e-4, see run_charts.LR_UNIT).
LOSS_COLOURS = {run_charts.TRAIN_LOSS: "#2563eb", run_charts.EVAL_LOSS: "#ea580c"}
CHART_OPTIONS: dict[str, dict[str, Any]] = {
    "loss": {"color": "series", "color_map": LOSS_COLOURS},
    "tokens_per_s": {"y_axis_format": "~s"},
}


@dataclass
class Confirm:
    """The question a cancel or a delete asks first, and its two answers."""
    kind: str  # "cancel" or "delete"
    row: gr.Row
    text: gr.Markdown
    yes: gr.Button
    no: gr.Button


@dataclass
class RunsTab:
    """The Runs tab's components (what its handlers read and update)."""
    selected_run: gr.State
    sigs: list[gr.State]  # what the table, the run and its metrics looked like when last drawn
    timer: gr.Timer
    table: gr.Dataframe
    phone_list: gr.Radio  # the table as one line per run, shown instead of it on a phone
    header: gr.Markdown
    progress: gr.HTML
    perf: gr.Markdown
    error: gr.Markdown
    cancel: gr.Button
    resume: gr.Button
    clone: gr.Button
    delete: gr.Button
    confirms: dict[str, Confirm]
    action_msg: gr.Markdown
    undo_delete: gr.Button
    last_deleted: gr.State
    charts: dict[str, gr.LinePlot]
    more_metric: gr.Dropdown  # which of the other logged metrics the "More metrics" chart draws
    more_chart: gr.LinePlot
    more_drawn: gr.State  # (run, metric, metrics signature) the chart shows
    log: gr.Code
    config: gr.Code
    artifacts: gr.Markdown
    deleted_box: gr.Accordion
    deleted_list: gr.Dropdown
    restore: gr.Button

    def detail(self) -> list[Any]:
        """Everything that shows the selected run, and the signatures of what it shows."""
        return [self.header, self.progress, self.perf, self.error, self.cancel, self.resume, self.clone,
                self.delete, self.log, self.config, self.artifacts, *self.charts.values(), *self.sigs[1:]]


def build(ctx: AppContext) -> RunsTab:
    timer, selected, sigs = gr.Timer(POLL_SECONDS), gr.State(None), [gr.State(None) for _ in range(3)]
    gr.Markdown("Every run, newest first. Click a row to follow it; everything here is read from the run "
                "database, so reloading the page or restarting the app loses nothing.")
    table = gr.Dataframe(headers=runs_table.TABLE_COLUMNS, column_widths=runs_table.TABLE_WIDTHS, interactive=False,
                         wrap=True, max_height=360, elem_id="runs-table", label="Runs", show_label=False,
                         elem_classes=["wide-only"])
    phone_list = gr.Radio(choices=[], value=None, label="Runs (newest first)", elem_id="runs-list",
                          elem_classes=["phone-only"])
    header = gr.Markdown(EMPTY_HEADER, elem_id="run-header")
    progress, perf = gr.HTML(elem_id="run-progress"), gr.Markdown(elem_id="run-perf")
    error = gr.Markdown(elem_id="run-error")
    with gr.Row():
        cancel = gr.Button("Cancel run", variant="secondary", interactive=False, elem_id="run-cancel")
        resume = gr.Button("Resume from last checkpoint", interactive=False, elem_id="run-resume")
        clone = gr.Button("Clone config into Train", interactive=False, elem_id="run-clone")
        delete = gr.Button("Delete run and files", interactive=False, elem_id="run-delete")
    confirms = {"cancel": _confirm("cancel", "Yes, cancel it"), "delete": _confirm("delete", "Yes, delete it")}
    with gr.Row():
        action_msg = gr.Markdown(elem_id="run-action-msg")
        undo_delete = gr.Button("Undo", visible=False, size="sm", scale=0, elem_id="run-undo-delete")
    charts: dict[str, gr.LinePlot] = {}
    for i in range(0, len(CHARTS), 2):
        with gr.Row():
            for key, title in CHARTS[i:i + 2]:
                charts[key] = gr.LinePlot(x="step", y="value", title=title, x_title="step", y_title=title,
                                          height=240, elem_id=f"chart-{key.replace('_', '-')}",
                                          **CHART_OPTIONS.get(key, {}))
    with gr.Row():
        # allow_custom_value: the menu's choices change with the run, and a value the page still holds from the
        # previous run would fail Gradio's own check, failing the poll it rides on (and the page stopped updating).
        # draw_more replaces a key the run does not have.
        more_metric = gr.Dropdown(choices=[], value=None, label="More metrics", scale=1, elem_id="run-more-metric",
                                  info="Everything else the trainer logs: token accuracy, entropy, tokens seen...",
                                  allow_custom_value=True)
        more_chart = gr.LinePlot(x="step", y="value", title=NO_MORE_METRICS, x_title="step", y_title="value",
                                 height=240, scale=3, elem_id="chart-more")
    with gr.Accordion("Log (events and the end of train.log)", open=True):
        log = gr.Code(language="shell", lines=12, max_lines=25, interactive=False, wrap_lines=True,
                      elem_id="run-log")
    with gr.Accordion("Resolved config", open=False):
        config = gr.Code(language="yaml", max_lines=40, interactive=False, elem_id="run-config")
    with gr.Accordion("Files on disk", open=False):
        artifacts = gr.Markdown(elem_id="run-artifacts")
    with gr.Accordion("Recently deleted runs", open=False, elem_id="runs-deleted") as deleted_box:
        gr.Markdown(f"Deleted runs stay restorable for {duration(ctx.settings.undo_seconds)}; "
                    "after that the worker removes their files for good.")
        with gr.Row():
            deleted_list = gr.Dropdown(choices=[], label="Deleted run", scale=4, elem_id="runs-deleted-list")
            restore = gr.Button("Restore", scale=1, elem_id="runs-restore")
    return RunsTab(selected_run=selected, sigs=sigs, timer=timer, table=table, phone_list=phone_list,
                   header=header, progress=progress,
                   perf=perf, error=error, cancel=cancel, resume=resume, clone=clone, delete=delete,
                   confirms=confirms, action_msg=action_msg, undo_delete=undo_delete, last_deleted=gr.State(None),
                   charts=charts, more_metric=more_metric, more_chart=more_chart, more_drawn=gr.State(None),
                   log=log, config=config, artifacts=artifacts, deleted_box=deleted_box,
                   deleted_list=deleted_list, restore=restore)


def _confirm(kind: str, yes: str) -> Confirm:
    with gr.Row(visible=False, elem_id=f"confirm-{kind}-row") as row:
        text = gr.Markdown()
        yes_btn = gr.Button(yes, variant="stop", elem_id=f"confirm-{kind}")
        no_btn = gr.Button("No, keep it", elem_id=f"confirm-{kind}-no")
    return Confirm(kind, row, text, yes_btn, no_btn)


# ---- rendering --------------------------------------------------------------------------------------------

def _buttons(ui: RunsTab, cancel: bool = False, resume: bool = False, clone: bool = False,
             delete: bool = False) -> Updates:
    # A disabled Cancel is grey like the others: red says "this stops something", which it then cannot.
    return {ui.cancel: gr.Button(interactive=cancel, variant="stop" if cancel else "secondary"),
            ui.resume: gr.Button(interactive=resume), ui.clone: gr.Button(interactive=clone),
            ui.delete: gr.Button(interactive=delete)}


def _charts(ui: RunsTab, frames: dict[str, Any], evaluates: bool, total_steps: int | None) -> Updates:
    def chart(key: str, **options: Any) -> gr.LinePlot:
        # With no point yet the step axis spans the run's steps: a lone 0 step was labelled "0.000000".
        empty = bool(frames[key]["value"].isna().all())
        return gr.LinePlot(value=frames[key], x_lim=[0, max(total_steps or 0, 1)] if empty else None, **options)

    title = run_charts.loss_title(evaluates)
    colours = {s: LOSS_COLOURS[s] for s in run_charts.loss_series(evaluates)}
    return {**{ui.charts[key]: chart(key) for key, _ in CHARTS},
            ui.charts["loss"]: chart("loss", title=title, y_title=title, color_map=colours)}


def _render(ui: RunsTab, run_id: int | None, with_charts: bool) -> Updates:
    """What shows one run; its charts only when ``with_charts`` (or when there is no run to show)."""
    detail = one_run.run_detail(run_id, with_charts=with_charts) if run_id is not None else None
    if detail is None:
        header = EMPTY_HEADER if run_id is None else f"Run {run_id} no longer exists (it was deleted)."
        return {ui.header: header, ui.progress: "", ui.perf: "", ui.error: "", **_buttons(ui), ui.log: "",
                ui.config: "", ui.artifacts: "", **_charts(ui, run_charts.chart_frames([]), False, None)}
    run = detail.run
    updates = {ui.header: detail.header, ui.progress: one_run.progress_html(detail.progress),
               ui.perf: detail.perf.describe(run.device),
               ui.error: f"**{one_run.error_heading(run.status)}** {detail.error}" if detail.error else "",
               **_buttons(ui, detail.can_cancel, detail.can_resume, True, detail.can_delete),
               ui.log: one_run.log_tail(run), ui.config: detail.config_yaml,
               ui.artifacts: one_run.artifacts_markdown(run)}
    charts = _charts(ui, detail.charts, detail.evaluates, run.total_steps) if with_charts else {}
    return {**updates, **charts}


def _signed(ui: RunsTab, run_id: int | None, with_charts: bool = True) -> Updates:
    # Signatures before rendering: a change that lands in between is then seen by the next poll, instead of a
    # stale render being stored under the newer signature and never redrawn.
    sigs = {ui.sigs[1]: one_run.run_signature(run_id), ui.sigs[2]: run_charts.metric_signature(run_id)}
    return {**sigs, **_render(ui, run_id, with_charts)}


def _table(ui: RunsTab, selected: int | None) -> Updates:
    signature = runs_table.table_signature()  # before reading, as in _signed
    frame = runs_table.table_frame()
    return {ui.table: frame, ui.phone_list: gr.Radio(choices=compact_choices(frame), value=selected),
            ui.sigs[0]: signature}


def _closed(ui: RunsTab) -> Updates:
    return {c.row: gr.Row(visible=False) for c in ui.confirms.values()}


# ---- handlers ---------------------------------------------------------------------------------------------

def tick(ui: RunsTab, selected: int | None, table_sig: Any, run_sig: Any, metric_sig: Any,
         request: gr.Request) -> Updates:
    if not may(request, "view_runs"):
        if table_sig == "denied":
            return unchanged()
        return {ui.table: [], ui.phone_list: gr.Radio(choices=[], value=None), ui.sigs[0]: "denied",
                **_render(ui, None, True), ui.header: NOT_ALLOWED, ui.sigs[1]: None, ui.sigs[2]: None}
    updates = _table(ui, selected) if runs_table.table_signature() != table_sig else {}
    new_run_sig, new_metric_sig = one_run.run_signature(selected), run_charts.metric_signature(selected)
    if selected is None or (new_run_sig == run_sig and new_metric_sig == metric_sig):
        return updates or unchanged()
    return {**updates, **_render(ui, selected, with_charts=new_metric_sig != metric_sig),
            ui.sigs[1]: new_run_sig, ui.sigs[2]: new_metric_sig}


def draw_more(ui: RunsTab, run_id: int | None, key: str | None, metric_sig: Any, drawn: Any,
              request: gr.Request) -> Updates:
    """The "More metrics" chart and its menu, redrawn only when the run, the chosen metric or its rows changed."""
    run_id = run_id if may(request, "view_runs") else None
    if drawn == (run_id, key, metric_sig):
        return unchanged()
    keys = extra_metrics.extra_keys(run_id)
    key = key if key in keys else (keys[0] if keys else None)
    return {ui.more_metric: gr.Dropdown(choices=keys, value=key),
            ui.more_chart: gr.LinePlot(value=extra_metrics.extra_frame(run_id, key), title=key or NO_MORE_METRICS,
                                       y_title=key or "value"),
            ui.more_drawn: (run_id, key, metric_sig)}


def show(ui: RunsTab, run_id: int | None, request: gr.Request) -> Updates:
    if not may(request, "view_runs"):
        return {**_render(ui, None, True), ui.header: NOT_ALLOWED, **_closed(ui)}
    return {**_signed(ui, run_id), ui.phone_list: gr.Radio(value=run_id), **_closed(ui)}


def select_from_list(ui: RunsTab, run_id: int | None) -> Updates:
    return {ui.selected_run: run_id, ui.action_msg: ""}


def select(ui: RunsTab, evt: gr.SelectData) -> Updates:
    try:
        # a click on another run clears the last action's message
        return {ui.selected_run: int((evt.row_value or [])[0]), ui.action_msg: ""}
    except (IndexError, TypeError, ValueError):
        return unchanged()


def ask(confirm: Confirm, run_id: int | None, request: gr.Request) -> Updates:
    """Show the cancel or delete question for the selected run (the confirming click is the guarded action)."""
    run = get_run(run_id) if run_id is not None and may(request, "view_runs") else None
    if run is None or run.deleted:
        return {confirm.row: gr.Row(visible=False), confirm.text: ""}
    text = one_run.confirm_text(confirm.kind, run, get_settings().undo_seconds)
    return {confirm.row: gr.Row(visible=True), confirm.text: f"**{text}**"}


def close(confirm: Confirm) -> Updates:
    return {confirm.row: gr.Row(visible=False)}


def _act(request: gr.Request, action: str, run_id: int | None, step: Callable[[int], Any]) -> Any:
    """Check the caller, then run one queue action on the selected run; refusals become plain messages."""
    guard(request, action)
    if run_id is None:
        raise toast.error("Select a run first.")
    try:
        return step(run_id)
    except queue.QueueError as exc:
        raise toast.error(str(exc)) from None


def _after(ui: RunsTab, run_id: int | None, message: str) -> Updates:
    """The run redrawn after an action, the table with it, and what the action did."""
    return {**_signed(ui, run_id), **_table(ui, run_id), ui.action_msg: message}


def cancel_run(ui: RunsTab, run_id: int | None, request: gr.Request) -> Updates:
    state = _act(request, "cancel", run_id, queue.request_cancel)
    message = (f"Run {run_id} cancelled." if state == "cancelled" else
               f"Cancel requested for run {run_id}: it stops at its next step and saves its adapter (the "
               "status above says when it has).")
    return {**_closed(ui), **_after(ui, run_id, message)}


def delete_run(ui: RunsTab, run_id: int | None, request: gr.Request) -> Updates:
    _act(request, "delete", run_id, queue.delete_run)
    message = one_run.deleted_message(run_id, get_settings().undo_seconds)
    return {**_closed(ui), ui.selected_run: None, ui.last_deleted: run_id, ui.undo_delete: gr.Button(visible=True),
            ui.deleted_list: gr.Dropdown(choices=one_run.deleted_choices(), value=None),
            **_after(ui, None, message)}


def restore_run(ui: RunsTab, run_id: int | None, request: gr.Request) -> Updates:
    guard(request, "delete")  # before anything else: a refused caller learns nothing
    if run_id is None:
        return {ui.action_msg: "Choose a run in *Deleted run* first, then Restore."}
    run = _act(request, "delete", run_id, queue.restore_run)
    return {ui.selected_run: run_id, ui.last_deleted: None, ui.undo_delete: gr.Button(visible=False),
            ui.deleted_list: gr.Dropdown(choices=one_run.deleted_choices(), value=None),
            **_after(ui, run_id, one_run.restored_message(run))}


def resume_run(ui: RunsTab, run_id: int | None, request: gr.Request) -> Updates:
    _act(request, "resume", run_id, queue.resume)
    return _after(ui, run_id, f"Run {run_id} is queued again; it continues from its last checkpoint.")


def list_deleted(ui: RunsTab, request: gr.Request) -> Updates:
    choices = one_run.deleted_choices() if may(request, "view_runs") else []
    return {ui.deleted_list: gr.Dropdown(choices=choices, value=None)}


@dataclass
class CloneTarget:
    """Where a cloned run's settings go: the Train form, its message line, and the tab strip to open it."""
    fields: dict[str, Component]
    message: gr.Markdown
    tabs: gr.Tabs


def clone(to: CloneTarget, run_id: int | None, request: gr.Request) -> Updates:
    guard(request, "view_runs")  # read-only, but it shows the run's settings
    run = get_run(run_id) if run_id is not None else None
    if run is None or run.deleted:
        raise toast.error("Select a run first.")
    try:
        config = run.run_config().with_overrides({"name": f"{run.name}-copy"[:100]})
    except ConfigError as exc:  # a run saved by an older schema: say which settings no longer fit
        raise toast.error("This run's config no longer validates: " + "; ".join(exc.errors)) from None
    values = form.config_to_values(config)
    return {**{to.fields[p]: values[p] for p in to.fields}, to.tabs: gr.Tabs(selected="train"),
            to.message: f"Run {run.id}'s settings are in the Train form as '{config.name}'."}


def wire(ui: RunsTab, train_ui: Any, tabs: gr.Tabs) -> None:
    more = dict(fn=bound(draw_more, ui), inputs=[ui.selected_run, ui.more_metric, ui.sigs[2], ui.more_drawn],
                outputs=[ui.more_metric, ui.more_chart, ui.more_drawn], show_progress="hidden", api_name=False)
    ui.timer.tick(bound(tick, ui), [ui.selected_run, *ui.sigs],
                  [ui.table, ui.phone_list, ui.sigs[0], *ui.detail()], show_progress="hidden", api_name="poll_runs",
                  concurrency_limit=None).then(**more, concurrency_limit=None)
    ui.more_metric.input(**more)
    rows = [c.row for c in ui.confirms.values()]
    # The action message is left alone here: delete and restore change the selection and say what they did.
    ui.selected_run.change(bound(show, ui), ui.selected_run, [*ui.detail(), ui.phone_list, *rows],
                           show_progress="hidden", api_name="show_run").then(**more)
    ui.phone_list.input(bound(select_from_list, ui), ui.phone_list, [ui.selected_run, ui.action_msg],
                        show_progress="hidden", api_name=False)
    ui.table.select(bound(select, ui), None, [ui.selected_run, ui.action_msg], show_progress="hidden",
                    api_name="select_run")
    # (api names avoid the action words: asking is not doing; access.action_for_endpoint reads them)
    for button, confirm, word in ((ui.cancel, ui.confirms["cancel"], "stop"), (ui.delete, ui.confirms["delete"],
                                                                               "erase")):
        button.click(bound(ask, confirm), ui.selected_run, [confirm.row, confirm.text], show_progress="hidden",
                     api_name=f"prompt_{word}_confirmation")
        confirm.no.click(bound(close, confirm), None, confirm.row, show_progress="hidden",
                         api_name=f"close_{word}_prompt")
    after = [*ui.detail(), ui.table, ui.phone_list, ui.sigs[0], ui.action_msg, *rows]
    undo = [ui.selected_run, ui.last_deleted, ui.undo_delete, ui.deleted_list]
    ui.confirms["cancel"].yes.click(bound(cancel_run, ui), ui.selected_run, after, api_name="cancel_run")
    ui.confirms["delete"].yes.click(bound(delete_run, ui), ui.selected_run, [*after, *undo], api_name="delete_run")
    ui.undo_delete.click(bound(restore_run, ui), ui.last_deleted, [*after, *undo], api_name="undo_delete")
    ui.restore.click(bound(restore_run, ui), ui.deleted_list, [*after, *undo], api_name="restore_run")
    ui.deleted_box.expand(bound(list_deleted, ui), None, ui.deleted_list, show_progress="hidden", api_name=False)
    ui.resume.click(bound(resume_run, ui), ui.selected_run, after, api_name="resume_run")
    to = CloneTarget(train_ui.fields, train_ui.launch_msg, tabs)
    ui.clone.click(bound(clone, to), ui.selected_run, [*to.fields.values(), tabs, to.message], api_name="clone_run")
