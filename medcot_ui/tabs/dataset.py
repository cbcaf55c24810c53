"""Dataset tab: choose a source, check it, fix the column mapping and format, and see exactly what the model
will be trained on (layout and wiring only; the work is in ``medcot_ui.data.report``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components import Component
import pandas as pd

from medcot_ui.data import report as dr
from medcot_ui.data.columns import ROLES
from medcot_ui.training.config import ConfigError, DataSettings, ModelSettings
from medcot_ui.hosting.context import AppContext
from medcot_ui.tabs.guard import guard
from medcot_ui.tabs.wiring import Updates, bound, unchanged
from medcot_ui.training.presets import starting_form
from medcot_ui.data.uploads import UploadLimits, UploadRejected, accept_upload, is_stored_upload

# The form's settings by config path (as in the Train form); "Use in the Train form" sends them in this order.
FORM_PATHS = ("data.source", "data.dataset_id", "data.dataset_config", "data.split", "data.file_path",
              "data.file_name", "data.question_column", "data.reasoning_column", "data.answer_column", "data.template",
              "data.custom_template", "data.eval_size", "data.split_seed", "model.base_model", "model.max_seq_length")
# What "Use in the Train form" copies (the model is chosen on the Train tab; this tab follows it).
PUSHED_PATHS = tuple(p for p in FORM_PATHS if p != "model.base_model")
START = starting_form()  # the same data and model the Train form opens with (the demo data: no network needed)

SOURCES = [("Hugging Face Hub", "hub"), ("Uploaded file", "file"), ("Demo data (bundled)", "demo")]
TEMPLATES = [("Reference recipe format", "recipe"), ("Model's chat template (R1 style)", "chat_template"),
             ("Custom template", "custom")]

PHI_NOTICE = (
    "**Patient data caution.** Only use data you are allowed to use for model training. On a shared server "
    "(e.g. a Hugging Face Space) uploaded files are stored on that server and are visible to its operator. "
    "The scan below flags obvious identifiers; it does not de-identify anything.")


def _help(section: type, name: str) -> dict[str, Any]:
    info = section.model_fields[name]
    return {"label": info.title, "info": info.description}


@dataclass
class DatasetTab:
    """The Dataset tab's components (what its handlers read and update), and the server's kept checks."""
    form: dict[str, Component]  # the settings by config path, as in the Train form
    hub_box: gr.Group
    file_box: gr.Group
    upload: gr.File
    load: gr.Button
    demo: gr.Button
    status: gr.Markdown
    summary: gr.Markdown
    push: gr.Button
    push_status: gr.Markdown
    rows: gr.Dataframe
    hist: gr.BarPlot
    parts: gr.Dataframe
    row_no: gr.Number
    row_info: gr.Markdown
    training_text: gr.Textbox
    prompt: gr.Textbox
    phi_md: gr.Markdown
    phi: gr.Dataframe
    report: gr.State     # the key of this session's report in ``checked``, never the rows themselves
    upload_ok: gr.State  # whether the last upload was accepted (only then is it checked)
    checked: dr.CheckedReports

    def analysis(self) -> list[Component]:
        """What a check redraws."""
        return [self.status, self.summary, *(self.form[f"data.{role}_column"] for role in ROLES), self.rows,
                self.hist, self.parts, self.row_no, self.row_info, self.training_text, self.prompt, self.phi_md,
                self.phi, self.report]


def build(ctx: AppContext) -> DatasetTab:
    gr.Markdown("Check the data before any GPU time is spent: what each row looks like to the model, how long "
                "rows are in tokens, and whether anything is wrong with the file.")
    gr.Markdown(PHI_NOTICE)
    form: dict[str, Component] = {}
    with gr.Row():
        with gr.Column(scale=2):
            source = _source(form)
        with gr.Column(scale=3):
            status = gr.Markdown("Choose a source and press **Load and check**. No network? Press **Load the demo "
                                 "data**.", elem_id="dataset-status")
            summary = gr.Markdown(elem_id="dataset-summary")
    with gr.Accordion("Columns, format and split", open=True):
        _mapping(form)
        with gr.Row():
            push = gr.Button("Use these settings in the Train form", elem_id="dataset-push")
            push_status = gr.Markdown()
    with gr.Accordion("Rows", open=True):
        rows = gr.Dataframe(headers=dr.ROWS_HEADERS, interactive=False, wrap=True, max_height=420,
                            elem_id="dataset-rows")
    with gr.Row():
        hist = gr.BarPlot(x="tokens per row", y="rows", color="length", x_label_angle=-45, height=320,
                          label="Tokens per row (training text, special tokens included)", elem_id="dataset-hist")
        parts = gr.Dataframe(headers=["part", "min", "median", "mean", "p95", "max"], interactive=False,
                             label="Tokens per part")
    with gr.Accordion("Preview: one row exactly as the model sees it", open=True):
        # No bounds on the field: a number out of range shows the nearest row and says so, not an error badge.
        row_no = gr.Number(1, precision=0, label="Row to preview")
        row_info = gr.Markdown(elem_id="dataset-row-info")
        training_text = gr.Textbox(label="Training text as tokenised (special tokens visible)", lines=14,
                                   max_lines=40, interactive=False, buttons=["copy"], elem_id="dataset-training-text")
        prompt = gr.Textbox(label="Inference prompt the Compare tab sends for this question", lines=8, max_lines=20,
                            interactive=False, buttons=["copy"], elem_id="dataset-prompt")
    with gr.Accordion("Identifier scan", open=False):
        phi_md = gr.Markdown()
        phi = gr.Dataframe(headers=dr.PHI_HEADERS, interactive=False, wrap=True, max_height=300)
    return DatasetTab(form=form, **source, status=status, summary=summary, push=push, push_status=push_status,
                      rows=rows, hist=hist, parts=parts, row_no=row_no, row_info=row_info,
                      training_text=training_text, prompt=prompt, phi_md=phi_md, phi=phi, report=gr.State(None),
                      upload_ok=gr.State(False), checked=dr.CheckedReports(ctx.settings.checked_datasets))


def _source(form: dict[str, Component]) -> dict[str, Any]:
    """The source fields (into ``form``) and the boxes and buttons around them."""
    d = START.data
    form["data.source"] = gr.Radio(SOURCES, value=d.source, elem_id="dataset-source",
                                   **_help(DataSettings, "source"))
    with gr.Group(visible=d.source == "hub") as hub_box:
        with gr.Row():
            form["data.dataset_id"] = gr.Textbox(d.dataset_id, scale=3, **_help(DataSettings, "dataset_id"))
            form["data.dataset_config"] = gr.Textbox(d.dataset_config, scale=1,
                                                     **_help(DataSettings, "dataset_config"))
    form["data.split"] = gr.Textbox(d.split, **_help(DataSettings, "split"))
    with gr.Group(visible=d.source == "file") as file_box:
        # No file_types: Gradio refuses other types itself, with a traceback in the server log; our own check
        # (accept_upload) refuses them with a sentence on the page instead.
        upload = gr.File(label=f"Upload a data file: JSON, JSONL, CSV or Parquet "
                         f"({UploadLimits.from_env().describe()})", type="filepath", elem_id="dataset-upload")
        form["data.file_name"] = gr.Textbox(d.file_name, interactive=False, label="Uploaded as",
                                            elem_id="dataset-file-name")
        # The stored copy (named by its content hash) is what the run reads; people see the name above.
        form["data.file_path"] = gr.Textbox(d.file_path, visible=False)
    with gr.Row():
        load = gr.Button("Load and check", variant="primary", elem_id="dataset-load")
        demo = gr.Button("Load the demo data", elem_id="dataset-demo")
    return {"hub_box": hub_box, "file_box": file_box, "upload": upload, "load": load, "demo": demo}


def _mapping(form: dict[str, Component]) -> None:
    """The column mapping, format, model and split fields (into ``form``)."""
    d, m = START.data, START.model
    with gr.Row():
        for role in ROLES:
            column = getattr(d, f"{role}_column")
            form[f"data.{role}_column"] = gr.Dropdown([column], value=column, allow_custom_value=True,
                                                      **_help(DataSettings, f"{role}_column"))
    with gr.Row():
        form["data.template"] = gr.Radio(TEMPLATES, value=d.template, **_help(DataSettings, "template"))
        form["model.base_model"] = gr.Textbox(m.base_model, label="Model (its tokenizer counts the tokens)",
                                              info="Follows the Train tab's base model.",
                                              elem_id="dataset-model")
    form["data.custom_template"] = gr.Textbox(d.custom_template, lines=12, max_lines=30,
                                              visible=d.template == "custom", **_help(DataSettings, "custom_template"))
    with gr.Row():
        form["model.max_seq_length"] = gr.Number(m.max_seq_length, precision=0, minimum=64, maximum=32768,
                                                 **_help(ModelSettings, "max_seq_length"))
        form["data.eval_size"] = gr.Number(d.eval_size, precision=0, minimum=0, **_help(DataSettings, "eval_size"))
        form["data.split_seed"] = gr.Number(d.split_seed, precision=0, minimum=0,
                                            **_help(DataSettings, "split_seed"))


# ---- handlers -------------------------------------------------------------------------------------------

def _split_form(named: dict[str, Any]) -> tuple[dict[str, Any], str, Any]:
    """(data settings, model id, max sequence length) from the form's values by config path."""
    data = {path.split(".", 1)[1]: value for path, value in named.items() if path.startswith("data.")}
    for key in ("eval_size", "split_seed"):
        data[key] = int(data[key]) if data[key] is not None else 0
    return data, named["model.base_model"], named["model.max_seq_length"]


def _analysis(ui: DatasetTab, report: dr.DatasetReport, key: str) -> Updates:
    d = report.data
    columns = report.columns or [d.question_column, d.reasoning_column, d.answer_column]
    mapping = {ui.form[f"data.{role}_column"]: gr.Dropdown(choices=columns, value=getattr(d, f"{role}_column"))
               for role in ROLES}
    stats = report.stats if report.error is None else None
    if stats is not None:
        bars = dr.histogram_rows(stats)
        hist = gr.BarPlot(value=pd.DataFrame(bars), sort=[b["tokens per row"] for b in bars])
        parts = pd.DataFrame(stats.summary())
    else:
        hist, parts = gr.BarPlot(value=None), None
    info, text, prompt = dr.row_preview_texts(report if report.error is None else None, 1)
    rows = gr.Dataframe(value=dr.rows_table(report) if report.error is None else None, label=_rows_label(report))
    return {ui.status: dr.status_markdown(report), ui.summary: dr.summary_markdown(report), **mapping,
            ui.rows: rows, ui.hist: hist, ui.parts: parts, ui.row_no: gr.Number(value=1), ui.row_info: info,
            ui.training_text: text, ui.prompt: prompt, ui.phi_md: dr.phi_markdown(report),
            ui.phi: dr.phi_table(report) or None, ui.report: key}


def _rows_label(report: dr.DatasetReport) -> str:
    if report.prepared is None or report.error:
        return "Rows"
    n = len(report.prepared.rows)
    return f"Rows (the first {min(n, dr.TABLE_ROWS)} of {n:,})"


def load_and_check(ui: DatasetTab, values: dict[Component, Any], request: gr.Request,
                   progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Updates:
    """Load (or reuse the loaded records), check and analyse what the form describes."""
    data, model_id, max_len = _split_form({p: values[c] for p, c in ui.form.items()})
    try:
        settings, max_len = dr.form_settings(data, max_len)
    except ConfigError as exc:
        problems = "\n".join(f"- {e}" for e in exc.errors)
        return {ui.status: f"### ❌ Check the settings\n{problems}"}
    if settings.source == "file":
        guard(request, "view_uploads")
        if not is_stored_upload(settings.file_path):  # the path comes from the client: never any server file
            return {ui.status: "### ❌ Upload a file first\nOnly files uploaded here can be checked in this tab."}
    report = dr.analyse(settings, model_id, max_len, loaded=ui.checked.loaded_for(settings),
                        progress=lambda f, what: progress(f, desc=what))
    return _analysis(ui, report, ui.checked.put(report))


def check_upload(ui: DatasetTab, values: dict[Component, Any], request: gr.Request,
                 progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Updates:
    """After an upload: check the stored copy, unless it was rejected (its error stays on screen)."""
    return load_and_check(ui, values, request, progress) if values[ui.upload_ok] else unchanged()


def recount(ui: DatasetTab, values: dict[Component, Any], request: gr.Request,
            progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Updates:
    """After the Train tab's model changed: count again with its tokenizer, when something was checked."""
    return load_and_check(ui, values, request, progress) if values[ui.report] is not None else unchanged()


def on_upload(ui: DatasetTab, path: str | None, request: gr.Request) -> Updates:
    guard(request, "upload")
    if not path:
        return {ui.upload_ok: False}
    try:
        accepted = accept_upload(path, Path(path).name)
    except UploadRejected as exc:
        return {ui.status: f"### ❌ Upload rejected\n{exc}\n\nNothing of this file was kept.", ui.upload_ok: False,
                ui.upload: None}
    note = (f"Uploaded **{accepted.original_name}**: {accepted.rows:,} rows, columns "
            f"{', '.join(f'`{c}`' for c in accepted.columns)}. Checking all of it (enter a slice such as "
            "train[0:500] under Split to use part of it)…")
    # A new file is used whole: a slice left over from the Hub default would silently drop rows.
    return {ui.status: note, ui.form["data.file_path"]: str(accepted.path),
            ui.form["data.file_name"]: accepted.original_name, ui.form["data.source"]: "file",
            ui.form["data.split"]: "train", ui.upload_ok: True}


def show_source(ui: DatasetTab, source: str) -> Updates:
    return {ui.hub_box: gr.Group(visible=source == "hub"), ui.file_box: gr.Group(visible=source == "file")}


def use_demo(ui: DatasetTab) -> Updates:
    return {ui.form["data.source"]: "demo", ui.form["data.split"]: "train"}


def preview(ui: DatasetTab, key: str | None, number: Any) -> Updates:
    report = ui.checked.get(key)
    if report is None and key is not None:
        info, text, prompt = (f"This check is no longer kept (the server keeps the last {ui.checked.capacity} "
                              "checked datasets of all users): press **Load and check** again.", "", "")
    else:
        info, text, prompt = dr.row_preview_texts(report, number)
    return {ui.row_info: info, ui.training_text: text, ui.prompt: prompt}


@dataclass
class PushTarget:
    """Where "Use these settings in the Train form" copies to, and where it says what it did."""
    form: dict[str, Component]    # the Dataset form's fields by config path
    fields: dict[str, Component]  # the Train form's fields by config path
    status: gr.Markdown


def push(to: PushTarget, values: dict[Component, Any]) -> Updates:
    """Copy the checked settings into the Train form (``values`` by the Dataset form's components)."""
    data, _, max_len = _split_form({p: values[to.form[p]] for p in FORM_PATHS})
    try:
        settings, max_len = dr.form_settings(data, max_len)
    except ConfigError as exc:
        return {to.status: "❌ Not copied: " + "; ".join(exc.errors)}
    chosen = {**{f"data.{k}": v for k, v in settings.model_dump().items()}, "model.max_seq_length": max_len}
    return {**{to.fields[p]: chosen[p] for p in PUSHED_PATHS}, to.status: f"✅ Copied {len(PUSHED_PATHS)} settings "
            f"to the Train form (source: {settings.source}, {settings.eval_size} held-out rows). Open the Train tab "
            "to launch."}


def wire(ui: DatasetTab, train_ui: Any, *_: Any) -> None:
    form = ui.form
    # Set inputs: the handler gets one {component: value} dict, and Gradio still injects request and progress.
    inputs = {form[p] for p in FORM_PATHS}
    checking = {"outputs": ui.analysis(), "show_progress_on": [ui.status]}
    form["data.source"].change(bound(show_source, ui), form["data.source"], [ui.hub_box, ui.file_box])
    form["data.template"].change(lambda t: gr.Textbox(visible=t == "custom"), form["data.template"],
                                 form["data.custom_template"])
    ui.load.click(bound(load_and_check, ui), inputs, api_name="load_and_check", **checking)
    ui.demo.click(bound(use_demo, ui), None, [form["data.source"], form["data.split"]]
                  ).then(bound(load_and_check, ui), inputs, api_name=False, **checking)
    ui.upload.upload(bound(on_upload, ui), ui.upload, [ui.status, form["data.file_path"], form["data.file_name"],
                                                       form["data.source"], form["data.split"], ui.upload_ok,
                                                       ui.upload]
                     ).success(bound(check_upload, ui), {*inputs, ui.upload_ok}, api_name="check_upload", **checking)
    # Re-check when the mapping or format is changed by hand (the loaded records are reused, not re-read).
    for path in ("data.question_column", "data.reasoning_column", "data.answer_column", "data.template"):
        form[path].input(bound(load_and_check, ui), inputs, api_name=False, **checking)
    for path in ("model.max_seq_length", "data.eval_size", "data.split_seed", "model.base_model"):
        form[path].submit(bound(load_and_check, ui), inputs, api_name=False, **checking)
    ui.row_no.change(bound(preview, ui), [ui.report, ui.row_no], [ui.row_info, ui.training_text, ui.prompt])
    to = PushTarget(form, train_ui.fields, ui.push_status)
    ui.push.click(bound(push, to), inputs, [*(to.fields[p] for p in PUSHED_PATHS), ui.push_status])
    # The token counts follow the model chosen for training: its tokenizer is the one that counts.
    train_ui.fields["model.base_model"].change(lambda v: v, train_ui.fields["model.base_model"],
                                               form["model.base_model"]
                                               ).then(bound(recount, ui), {*inputs, ui.report}, api_name=False,
                                                      **checking)
