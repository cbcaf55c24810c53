"""Dataset tab: choose a source, check it, fix the column mapping and format, and see exactly what the model
will be trained on (layout and wiring only; the work is in ``medcot_ui.data.report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from medcot_ui.data import report as dr
from medcot_ui.data.columns import ROLES
from medcot_ui.training.config import ConfigError, DataSettings, ModelSettings
from medcot_ui.hosting.context import AppContext
from medcot_ui.tabs.guard import guard
from medcot_ui.data.uploads import UploadLimits, UploadRejected, accept_upload, is_stored_upload

# The form's settings by config path (as in the Train form); "Use in the Train form" sends them in this order.
FORM_PATHS = ("data.source", "data.dataset_id", "data.dataset_config", "data.split", "data.file_path",
              "data.file_name", "data.question_column", "data.reasoning_column", "data.answer_column", "data.template",
              "data.custom_template", "data.eval_size", "data.split_seed", "model.base_model", "model.max_seq_length")
# What "Use in the Train form" copies (the model is chosen on the Train tab; this tab follows it).
PUSHED_PATHS = tuple(p for p in FORM_PATHS if p != "model.base_model")

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


def build(ctx: AppContext) -> dict[str, Any]:
    d, m = DataSettings(), ModelSettings()
    limits = UploadLimits.from_env()
    gr.Markdown("Check the data before any GPU time is spent: what each row looks like to the model, how long "
                "rows are in tokens, and whether anything is wrong with the file.")
    gr.Markdown(PHI_NOTICE)
    form: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=2):
            form["data.source"] = gr.Radio(SOURCES, value=d.source, **_help(DataSettings, "source"))
            with gr.Group(visible=d.source == "hub") as hub_box:
                with gr.Row():
                    form["data.dataset_id"] = gr.Textbox(d.dataset_id, scale=3, **_help(DataSettings, "dataset_id"))
                    form["data.dataset_config"] = gr.Textbox(d.dataset_config, scale=1,
                                                             **_help(DataSettings, "dataset_config"))
            form["data.split"] = gr.Textbox(d.split, **_help(DataSettings, "split"))
            with gr.Group(visible=d.source == "file") as file_box:
                # No file_types: Gradio refuses other types itself, with a traceback in the server log; our own
                # check (accept_upload) refuses them with a sentence on the page instead.
                upload = gr.File(label=f"Upload a data file: JSON, JSONL, CSV or Parquet ({limits.describe()})",
                                 type="filepath", elem_id="dataset-upload")
                form["data.file_name"] = gr.Textbox(d.file_name, interactive=False, label="Uploaded as",
                                                    elem_id="dataset-file-name")
                # The stored copy (named by its content hash) is what the run reads; people see the name above.
                form["data.file_path"] = gr.Textbox(d.file_path, visible=False)
            with gr.Row():
                load_btn = gr.Button("Load and check", variant="primary", elem_id="dataset-load")
                demo_btn = gr.Button("Load the demo data", elem_id="dataset-demo")
        with gr.Column(scale=3):
            status = gr.Markdown("Choose a source and press **Load and check**. No network? Press **Load the demo "
                                 "data**.", elem_id="dataset-status")
            summary = gr.Markdown(elem_id="dataset-summary")
    with gr.Accordion("Columns, format and split", open=True):
        with gr.Row():
            form["data.question_column"] = gr.Dropdown([d.question_column], value=d.question_column,
                                                       allow_custom_value=True,
                                                       **_help(DataSettings, "question_column"))
            form["data.reasoning_column"] = gr.Dropdown([d.reasoning_column], value=d.reasoning_column,
                                                        allow_custom_value=True,
                                                        **_help(DataSettings, "reasoning_column"))
            form["data.answer_column"] = gr.Dropdown([d.answer_column], value=d.answer_column,
                                                     allow_custom_value=True, **_help(DataSettings, "answer_column"))
        with gr.Row():
            form["data.template"] = gr.Radio(TEMPLATES, value=d.template, **_help(DataSettings, "template"))
            form["model.base_model"] = gr.Textbox(m.base_model, label="Model (its tokenizer counts the tokens)",
                                                  info="Follows the Train tab's base model.")
        form["data.custom_template"] = gr.Textbox(d.custom_template, lines=12, max_lines=30,
                                                  visible=d.template == "custom",
                                                  **_help(DataSettings, "custom_template"))
        with gr.Row():
            form["model.max_seq_length"] = gr.Number(m.max_seq_length, precision=0, minimum=64, maximum=32768,
                                                     **_help(ModelSettings, "max_seq_length"))
            form["data.eval_size"] = gr.Number(d.eval_size, precision=0, minimum=0,
                                               **_help(DataSettings, "eval_size"))
            form["data.split_seed"] = gr.Number(d.split_seed, precision=0, minimum=0,
                                                **_help(DataSettings, "split_seed"))
        with gr.Row():
            push_btn = gr.Button("Use these settings in the Train form", elem_id="dataset-push")
            push_status = gr.Markdown()
    with gr.Accordion("Rows", open=True):
        rows_df = gr.Dataframe(headers=dr.ROWS_HEADERS, interactive=False, wrap=True, max_height=420,
                               elem_id="dataset-rows")
    with gr.Row():
        hist = gr.BarPlot(x="tokens per row", y="rows", color="length", x_label_angle=-45, height=320,
                          label="Tokens per row (training text, special tokens included)", elem_id="dataset-hist")
        parts_df = gr.Dataframe(headers=["part", "min", "median", "mean", "p95", "max"], interactive=False,
                                label="Tokens per part")
    with gr.Accordion("Preview: one row exactly as the model sees it", open=True):
        # No bounds on the field: a number out of range shows the nearest row and says so, not an error badge.
        row_no = gr.Number(1, precision=0, label="Row to preview")
        row_info = gr.Markdown(elem_id="dataset-row-info")
        training_view = gr.Textbox(label="Training text as tokenised (special tokens visible)", lines=14,
                                   max_lines=40, interactive=False, buttons=["copy"], elem_id="dataset-training-text")
        prompt_view = gr.Textbox(label="Inference prompt the Compare tab sends for this question", lines=8,
                                 max_lines=20, interactive=False, buttons=["copy"], elem_id="dataset-prompt")
    with gr.Accordion("Identifier scan", open=False):
        phi_md = gr.Markdown()
        phi_df = gr.Dataframe(headers=dr.PHI_HEADERS, interactive=False, wrap=True, max_height=300)
    report_state = gr.State(None)  # the key of this session's report in ``checked``, never the rows themselves
    upload_ok = gr.State(False)
    return {"form": form, "hub_box": hub_box, "file_box": file_box, "upload": upload, "load": load_btn,
            "demo": demo_btn, "status": status, "summary": summary, "push": push_btn, "push_status": push_status,
            "rows": rows_df, "hist": hist, "parts": parts_df, "row_no": row_no, "row_info": row_info,
            "training_text": training_view, "prompt": prompt_view, "phi_md": phi_md, "phi": phi_df,
            "report": report_state, "upload_ok": upload_ok,
            "checked": dr.CheckedReports(ctx.settings.checked_datasets)}


# ---- handlers -------------------------------------------------------------------------------------------

def _split_form(named: dict[str, Any]) -> tuple[dict[str, Any], str, Any]:
    """(data settings, model id, max sequence length) from the form's values by config path."""
    data = {path.split(".", 1)[1]: value for path, value in named.items() if path.startswith("data.")}
    for key in ("eval_size", "split_seed"):
        data[key] = int(data[key]) if data[key] is not None else 0
    return data, named["model.base_model"], named["model.max_seq_length"]


N_OUTPUTS = 15  # status, summary, 3 mapping menus, rows, histogram, parts, row number, row info, training text,
# prompt, identifier note, identifier table, report key (the order wire() lists them in)


def _analysis_outputs(report: dr.DatasetReport, key: str) -> list[Any]:
    d = report.data
    columns = report.columns or [d.question_column, d.reasoning_column, d.answer_column]
    dropdowns = [gr.Dropdown(choices=columns, value=getattr(d, f"{role}_column"))
                 for role in ROLES]
    stats = report.stats if report.error is None else None
    if stats is not None:
        bars = dr.histogram_rows(stats)
        hist = gr.BarPlot(value=pd.DataFrame(bars), sort=[b["tokens per row"] for b in bars])
        parts = pd.DataFrame(stats.summary())
    else:
        hist, parts = gr.BarPlot(value=None), None
    info, text, prompt = dr.row_preview_texts(report if report.error is None else None, 1)
    return [dr.status_markdown(report), dr.summary_markdown(report), *dropdowns,
            gr.Dataframe(value=dr.rows_table(report) if report.error is None else None,
                         label=_rows_label(report)),
            hist, parts, gr.Number(value=1),
            info, text, prompt, dr.phi_markdown(report), dr.phi_table(report) or None, key]


def _rows_label(report: dr.DatasetReport) -> str:
    if report.prepared is None or report.error:
        return "Rows"
    n = len(report.prepared.rows)
    return f"Rows (the first {min(n, dr.TABLE_ROWS)} of {n:,})"


def check(ui: dict[str, Any], values: dict[Any, Any], request: gr.Request | None,
          progress: gr.Progress) -> list[Any]:
    """Load (or reuse the loaded records), check and analyse what the form describes."""
    data, model_id, max_len = _split_form({p: values[c] for p, c in ui["form"].items()})
    try:
        settings, max_len = dr.form_settings(data, max_len)
    except ConfigError as exc:
        problems = "\n".join(f"- {e}" for e in exc.errors)
        return [f"### ❌ Check the settings\n{problems}", *[gr.skip()] * (N_OUTPUTS - 1)]
    if settings.source == "file":
        guard(request, "view_uploads")
        if not is_stored_upload(settings.file_path):  # the path comes from the client: never any server file
            return ["### ❌ Upload a file first\nOnly files uploaded here can be checked in this tab.",
                    *[gr.skip()] * (N_OUTPUTS - 1)]
    checked: dr.CheckedReports = ui["checked"]
    report = dr.analyse(settings, model_id, max_len, loaded=checked.loaded_for(settings),
                        progress=lambda f, what: progress(f, desc=what))
    return _analysis_outputs(report, checked.put(report))


def on_upload(path: str | None, request: gr.Request) -> tuple[Any, ...]:
    guard(request, "upload")
    if not path:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), False, gr.skip()
    try:
        accepted = accept_upload(path, Path(path).name)
    except UploadRejected as exc:
        rejected = f"### ❌ Upload rejected\n{exc}\n\nNothing of this file was kept."
        return rejected, gr.skip(), gr.skip(), gr.skip(), gr.skip(), False, None
    note = (f"Uploaded **{accepted.original_name}**: {accepted.rows:,} rows, columns "
            f"{', '.join(f'`{c}`' for c in accepted.columns)}. Checking all of it (enter a slice such as "
            "train[0:500] under Split to use part of it)…")
    # A new file is used whole: a slice left over from the Hub default would silently drop rows.
    return note, str(accepted.path), accepted.original_name, "file", "train", True, gr.skip()


def wire(ui: dict[str, Any], train_ui: dict[str, Any] | None = None, *_: Any) -> None:
    if not ui:
        return
    form = ui["form"]
    inputs = [form[p] for p in FORM_PATHS]
    outputs = [ui["status"], ui["summary"], form["data.question_column"], form["data.reasoning_column"],
               form["data.answer_column"], ui["rows"], ui["hist"], ui["parts"], ui["row_no"], ui["row_info"],
               ui["training_text"], ui["prompt"], ui["phi_md"], ui["phi"], ui["report"]]
    assert len(outputs) == N_OUTPUTS

    # Set inputs: the handler gets one {component: value} dict, and Gradio still injects request and progress.
    def load_and_check(values: dict[Any, Any], request: gr.Request,
                       progress: gr.Progress = gr.Progress(track_tqdm=True)) -> list[Any]:
        return check(ui, values, request, progress)

    def check_upload(values: dict[Any, Any], request: gr.Request,
                     progress: gr.Progress = gr.Progress(track_tqdm=True)) -> list[Any]:
        """After an upload: check the stored copy, unless it was rejected (its error stays on screen)."""
        return check(ui, values, request, progress) if values[ui["upload_ok"]] else [gr.skip()] * N_OUTPUTS

    checking = {"inputs": set(inputs), "outputs": outputs, "show_progress_on": [ui["status"]]}

    form["data.source"].change(lambda s: (gr.Group(visible=s == "hub"), gr.Group(visible=s == "file")),
                               inputs=form["data.source"], outputs=[ui["hub_box"], ui["file_box"]])
    form["data.template"].change(lambda t: gr.Textbox(visible=t == "custom"), inputs=form["data.template"],
                                 outputs=form["data.custom_template"])
    ui["load"].click(load_and_check, **checking)
    ui["demo"].click(lambda: ("demo", "train"), outputs=[form["data.source"], form["data.split"]]
                     ).then(load_and_check, **checking)
    ui["upload"].upload(on_upload, inputs=ui["upload"],
                        outputs=[ui["status"], form["data.file_path"], form["data.file_name"], form["data.source"],
                                 form["data.split"], ui["upload_ok"], ui["upload"]]
                        ).success(check_upload, **{**checking, "inputs": {*checking["inputs"], ui["upload_ok"]}})
    # Re-check when the mapping or format is changed by hand (the loaded records are reused, not re-read).
    for path in ("data.question_column", "data.reasoning_column", "data.answer_column", "data.template"):
        form[path].input(load_and_check, **checking)
    for path in ("model.max_seq_length", "data.eval_size", "data.split_seed", "model.base_model"):
        form[path].submit(load_and_check, **checking)
    def preview(key: str | None, number: Any) -> tuple[str, str, str]:
        report = ui["checked"].get(key)
        if report is None and key is not None:
            return (f"This check is no longer kept (the server keeps the last {ui['checked'].capacity} checked "
                    "datasets of all users): press **Load and check** again.", "", "")
        return dr.row_preview_texts(report, number)

    ui["row_no"].change(preview, inputs=[ui["report"], ui["row_no"]],
                        outputs=[ui["row_info"], ui["training_text"], ui["prompt"]])
    _wire_train(ui, (train_ui or {}).get("fields") or {})


def _wire_train(ui: dict[str, Any], fields: dict[str, Any]) -> None:
    """Copy the checked settings into the Train form, and follow the Train form's base model."""
    form = ui["form"]
    targets = [p for p in PUSHED_PATHS if p in fields]

    def push(*values: Any) -> list[Any]:
        data, _, max_len = _split_form(dict(zip(FORM_PATHS, values)))
        skip = [gr.skip()] * len(targets)
        if not targets:
            return [*skip, "The Train form is not available yet."]
        try:
            settings, max_len = dr.form_settings(data, max_len)
        except ConfigError as exc:
            return [*skip, "❌ Not copied: " + "; ".join(exc.errors)]
        chosen = {**{f"data.{k}": v for k, v in settings.model_dump().items()}, "model.max_seq_length": max_len}
        return [*(chosen[p] for p in targets), f"✅ Copied {len(targets)} settings to the Train form "
                f"(source: {settings.source}, {settings.eval_size} held-out rows). Open the Train tab to launch."]

    ui["push"].click(push, inputs=[form[p] for p in FORM_PATHS],
                     outputs=[*(fields[p] for p in targets), ui["push_status"]])
    if "model.base_model" in fields:
        fields["model.base_model"].change(lambda v: v, inputs=fields["model.base_model"],
                                          outputs=form["model.base_model"])
