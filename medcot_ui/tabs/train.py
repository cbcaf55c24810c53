"""Train tab: the run config form (generated from the schema), presets, YAML save/load, estimate, Launch.

Layout and wiring only: the form spec, validation and CLI text come from ``medcot_ui.training.form``, the estimate from
``medcot_ui.training.estimate_text``; Launch queues the run with ``jobkinds.enqueue`` and hands over to the Runs tab.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components import Component

from medcot_ui.jobkinds import enqueue
from medcot_ui.training import estimate_text, gpus
from medcot_ui.training import form
from medcot_ui.training import tracking
from medcot_ui.data import uploads
from medcot_ui.training.config import ConfigError, RunConfig
from medcot_ui.hosting.context import AppContext
from medcot_ui.training.models import cuda_available
from medcot_ui.training.presets import PRESET_LABELS, PRESETS, starting_form
from medcot_ui.tabs.guard import guard
from medcot_ui.tabs.wiring import Updates, bound, unchanged

DEFAULT_PRESET = next(label for label, key in PRESET_LABELS.items() if key == "recipe")
OPEN_GROUPS = ("Model", "Training", "Data")
PHONE_WIDTH = 640  # px: narrower than this, the settings groups start folded


def _elem(path: str, prefix: str = "field") -> str:
    return f"{prefix}-{path.replace('.', '-')}"


def _component(spec: form.FieldSpec, value: Any) -> Component:
    common = {"label": spec.label, "info": spec.help, "value": value, "elem_id": _elem(spec.path)}
    if spec.kind == "checkbox":
        return gr.Checkbox(**common)
    if spec.kind == "dropdown":
        return gr.Dropdown(choices=list(spec.choices), **common)
    if spec.kind == "list":
        return gr.Dropdown(choices=list(spec.default), multiselect=True, allow_custom_value=True, **common)
    if spec.kind == "int":
        return gr.Number(precision=0, step=1, **common)
    if spec.kind == "number":
        step = 10 ** math.floor(math.log10(abs(spec.default))) if spec.default else 0.01
        return gr.Number(step=step, **common)
    return gr.Textbox(lines=8 if spec.multiline else 1, max_lines=20 if spec.multiline else 1, **common)


def _wandb_note() -> str:
    if not tracking.wandb_installed():
        return ("Weights & Biases reporting needs the wandb package, which is not installed here: run "
                "`pip install wandb` (then restart the app). The app's own metrics are always recorded either way.")
    return ("W&B reads its key from WANDB_API_KEY in the app's environment (never from this form); 'offline' mode "
            "writes the W&B run into the run folder without a network. The app's own metrics are always recorded.")


@dataclass
class TrainTab:
    """The Train tab's components: the schema's fields (by config path) with their error boxes, and the rest."""
    fields: dict[str, Component]
    errors: dict[str, gr.Markdown]
    groups: list[gr.Accordion]  # the settings groups, folded away on a phone
    width: gr.Number            # the browser's width, read once when the page opens
    preset: gr.Dropdown
    load: gr.UploadButton
    save: gr.Button
    saved: gr.File
    summary: gr.Markdown
    data_lines: list[gr.Markdown]  # which data the run trains on: under the preset and above Launch
    gpu: gr.Dropdown
    estimate: gr.Markdown
    config_yaml: gr.Code
    cli: gr.Code
    launch: gr.Button
    launch_msg: gr.Markdown
    launched: gr.State          # the id of the run Launch just queued (None when it queued nothing)


def build(ctx: AppContext) -> TrainTab:
    start = starting_form()
    specs, values = form.form_spec(), form.config_to_values(start)
    fields: dict[str, Component] = {}
    errors: dict[str, gr.Markdown] = {}

    def field(spec: form.FieldSpec) -> None:
        with gr.Column(min_width=240):
            fields[spec.path] = _component(spec, values[spec.path])
            errors[spec.path] = gr.Markdown(visible=False, elem_id=_elem(spec.path, "error"),
                                            elem_classes=["field-error"])

    gr.Markdown("Set up a fine-tuning run. Every setting starts at the reference recipe, on the demo data; pick a "
                "preset to start elsewhere. Launch queues the run and takes you to it in **Runs**.")
    with gr.Row(equal_height=True):
        preset = gr.Dropdown(choices=list(PRESET_LABELS), value=DEFAULT_PRESET, label="Preset",
                             info="Fills the model, LoRA and training settings; the data stays as you chose it.",
                             elem_id="train-preset", scale=2)
        field(next(s for s in specs if s.group == form.RUN_GROUP))
        with gr.Column(scale=1, min_width=200):
            # No file_types: Gradio's own refusal prints a traceback; RunConfig.load refuses in a sentence.
            load = gr.UploadButton("Load config (YAML)", size="md", elem_id="train-load")
            save = gr.Button("Save config (YAML)", size="md", elem_id="train-save")
    data_top = gr.Markdown(form.data_summary(start), elem_id="train-data")
    saved = gr.File(label="Saved config", visible=False, interactive=False, elem_id="train-saved")
    summary = gr.Markdown(elem_id="train-summary")
    groups = [_group(name, [s for s in specs if s.group == name], field) for name in form.groups()[1:]]
    with gr.Accordion("Before you launch: estimate, resolved config, CLI command", open=True):
        gpu = gr.Dropdown(choices=list(gpus.GPUS), value=gpus.detected_gpu() or gpus.REFERENCE_GPU,
                          label="Estimate for GPU", info="This machine's GPU when it has one; else pick the one you "
                          "plan to train on.", elem_id="train-gpu")
        estimate_md = gr.Markdown(estimate_text.describe(start, cuda=cuda_available()), elem_id="train-estimate")
        with gr.Row():
            config_yaml = gr.Code(start.to_yaml(), language="yaml", label="Resolved config", max_lines=30,
                                  interactive=False, elem_id="train-config-yaml")
            cli = gr.Code(form.cli_command(start), language="shell", label="Equivalent CLI command",
                          interactive=False, elem_id="train-cli")
    data_bottom = gr.Markdown(form.data_summary(start), elem_id="train-data-launch")
    launch = gr.Button("Launch training", variant="primary", elem_id="train-launch")
    return TrainTab(fields=fields, errors=errors, groups=groups, width=gr.Number(visible=False), preset=preset,
                    load=load, save=save, saved=saved, summary=summary, data_lines=[data_top, data_bottom], gpu=gpu,
                    estimate=estimate_md, config_yaml=config_yaml, cli=cli, launch=launch,
                    launch_msg=gr.Markdown(elem_id="train-launch-msg"), launched=gr.State(None))


def _group(name: str, specs: list[form.FieldSpec], field: Callable[[form.FieldSpec], None]) -> gr.Accordion:
    """One settings group: short fields three to a row, then the multi-line ones."""
    with gr.Accordion(name, open=name in OPEN_GROUPS, elem_id=f"group-{name.lower()}") as group:
        short = [s for s in specs if not s.multiline]
        for i in range(0, len(short), 3):
            with gr.Row():
                for spec in short[i:i + 3]:
                    field(spec)
        for spec in specs:
            if spec.multiline:
                field(spec)
        if name == "Tracking":
            gr.Markdown(_wandb_note(), elem_id="train-wandb-note")
    return group


# ---- handlers ---------------------------------------------------------------------------------------------

def _validate(values: dict[str, Any]) -> tuple[RunConfig | None, list[str]]:
    try:
        config = form.values_to_config(values)
    except ConfigError as exc:
        return None, exc.errors
    return config, tracking.tracking_problems(config)


def _collect(ui: TrainTab, data: dict[Component, Any]) -> dict[str, Any]:
    return {path: data[component] for path, component in ui.fields.items()}


def _problems(ui: TrainTab, problems: list[str]) -> Updates:
    """Each field's error box (shown or cleared), and the summary line (problems naming no field go there)."""
    by_field = form.errors_by_field(problems)
    labels = {s.path: s.label for s in form.form_spec()}
    updates: Updates = {
        box: gr.Markdown(value="\n".join(f"⚠️ {m}" for m in by_field[p]), visible=True) if p in by_field
        else gr.Markdown(value="", visible=False) for p, box in ui.errors.items()}
    if not problems:
        return {**updates, ui.summary: ""}
    named = [f"**{labels[p]}** (`{p}`)" for p in by_field if p]
    text = f"⚠️ {len(problems)} problem{'s' if len(problems) > 1 else ''} to fix before launch"
    text += (": " + ", ".join(named) if named else "") + "."
    if general := by_field.get("", []):
        text += "\n\n" + "\n".join(f"- {g}" for g in general)
    return {**updates, ui.summary: text}


def review(ui: TrainTab, data: dict[Component, Any]) -> Updates:
    config, problems = _validate(_collect(ui, data))
    if config is None:
        return _problems(ui, problems)
    return {**_problems(ui, problems), ui.estimate: estimate_text.describe(config, data[ui.gpu], cuda=cuda_available()),
            ui.config_yaml: config.to_yaml(), ui.cli: form.cli_command(config),
            **{line: form.data_summary(config) for line in ui.data_lines}}


def apply_preset(ui: TrainTab, label: str) -> Updates:
    values = form.preset_values(PRESETS[PRESET_LABELS[label]]())
    return {ui.fields[p]: v for p, v in values.items()}


def launch(ui: TrainTab, data: dict[Component, Any], request: gr.Request) -> Updates:
    guard(request, "train")
    config, problems = _validate(_collect(ui, data))
    if config is not None:
        problems += uploads.data_file_problems(config.data)
    if config is None or problems:
        return {**_problems(ui, problems), ui.launch_msg: "Not launched: fix the settings marked above.",
                ui.launched: None}
    run = enqueue(config.job_kind, config)
    return {**_problems(ui, []), ui.launch_msg: f"Queued run {run.id} ({run.name}). Follow it in **Runs**.",
            ui.launched: run.id}


def save_config(ui: TrainTab, data: dict[Component, Any]) -> Updates:
    config, problems = _validate(_collect(ui, data))
    if config is None:  # tracking problems do not stop a save: the file may be for another machine
        return {ui.saved: gr.File(visible=False), **_problems(ui, problems)}
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in (config.name or "run-config"))
    path = Path(tempfile.mkdtemp(prefix="medcot-config-")) / f"{name}.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    return {ui.saved: gr.File(value=str(path), visible=True), **_problems(ui, [])}


def load_config(ui: TrainTab, file: str | None, request: gr.Request) -> Updates:
    guard(request, "upload")
    if not file:
        return unchanged()
    try:
        config = RunConfig.load(file)
    except ConfigError as exc:
        lines = "\n".join(f"- {e}" for e in exc.errors)
        return {ui.summary: f"⚠️ Could not load {Path(file).name}; the form is unchanged:\n{lines}"}
    values = form.config_to_values(config)
    return {**{ui.fields[p]: values[p] for p in ui.fields}, ui.summary: f"Loaded {Path(file).name}."}


def fold_on_phone(ui: TrainTab, width: float | None) -> Updates:
    """On a phone-sized screen the settings groups start folded: the page is the preset, the data and Launch."""
    if not width or width > PHONE_WIDTH:
        return unchanged()
    return {group: gr.Accordion(open=False) for group in ui.groups}


@dataclass
class Handover:
    """Where a launched run is shown: the Runs tab's selection, and the tab strip."""
    selected_run: gr.State
    tabs: gr.Tabs


def open_launched(to: Handover, run_id: int | None) -> Updates:
    return unchanged() if run_id is None else {to.selected_run: run_id, to.tabs: gr.Tabs(selected="runs")}


def wire(ui: TrainTab, runs_ui: Any, tabs: gr.Tabs) -> None:
    components = list(ui.fields.values())
    form_outputs = [ui.summary, ui.estimate, ui.config_yaml, ui.cli, *ui.data_lines, *ui.errors.values()]
    gr.on([c.change for c in components] + [ui.gpu.change], bound(review, ui), inputs={*components, ui.gpu},
          outputs=form_outputs, trigger_mode="always_last", show_progress="hidden", api_name="review_config")
    ui.preset.input(bound(apply_preset, ui), ui.preset, components, api_name="apply_preset")
    ui.launch.click(bound(launch, ui), inputs=set(components),
                    outputs=[*ui.errors.values(), ui.summary, ui.launch_msg, ui.launched],
                    api_name="launch_training", concurrency_limit=1
                    ).then(bound(open_launched, Handover(runs_ui.selected_run, tabs)), ui.launched,
                           [runs_ui.selected_run, tabs], api_name=False)
    ui.save.click(bound(save_config, ui), inputs=set(components), outputs=[ui.saved, ui.summary, *ui.errors.values()],
                  api_name="save_config")
    ui.load.upload(bound(load_config, ui), ui.load, [*components, ui.summary], api_name="upload_config")
    page = gr.context.Context.root_block
    if page is not None:  # the width comes from the browser (js), then the fold from the server
        page.load(bound(fold_on_phone, ui), ui.width, ui.groups, js="() => [window.innerWidth]", api_name=False)
