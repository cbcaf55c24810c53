"""Train tab: the run config form (generated from the schema), presets, YAML save/load, estimate, Launch.

Layout and wiring only: the form spec, validation and CLI text come from ``medcot_ui.training.form``, the estimate from
``medcot_ui.training.estimate``; Launch queues the run with ``jobs.queue.enqueue`` and hands over to the Runs tab.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from jobs.queue import enqueue
from medcot_ui.training import estimate_text, gpus
from medcot_ui.training import form
from medcot_ui.training import tracking
from medcot_ui.data import uploads
from medcot_ui.training.config import ConfigError, RunConfig
from medcot_ui.hosting.context import AppContext
from medcot_ui.training.models import cuda_available
from medcot_ui.training.presets import PRESET_LABELS, PRESETS
from medcot_ui.tabs.guard import guard

DEFAULT_PRESET = next(label for label, key in PRESET_LABELS.items() if key == "recipe")
OPEN_GROUPS = ("Model", "Training", "Data")


def _elem(path: str, prefix: str = "field") -> str:
    return f"{prefix}-{path.replace('.', '-')}"


def _component(spec: form.FieldSpec, value: Any) -> gr.components.Component:
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


def build(ctx: AppContext) -> dict[str, Any]:
    specs = form.form_spec()
    values = form.config_to_values(RunConfig())
    fields: dict[str, Any] = {}
    errors: dict[str, Any] = {}

    def field(spec: form.FieldSpec) -> None:
        with gr.Column(min_width=240):
            fields[spec.path] = _component(spec, values[spec.path])
            errors[spec.path] = gr.Markdown(visible=False, elem_id=_elem(spec.path, "error"),
                                            elem_classes=["field-error"])

    gr.Markdown("Set up a fine-tuning run. Every setting starts at the reference recipe; pick a preset to start "
                "elsewhere. Launch queues the run and takes you to it in **Runs**.")
    with gr.Row(equal_height=True):
        preset = gr.Dropdown(choices=list(PRESET_LABELS), value=DEFAULT_PRESET, label="Preset",
                             info="Fills every field below.", elem_id="train-preset", scale=2)
        field(next(s for s in specs if s.group == form.RUN_GROUP))
        with gr.Column(scale=1, min_width=200):
            # No file_types: Gradio's own refusal prints a traceback; RunConfig.load refuses in a sentence.
            load = gr.UploadButton("Load config (YAML)", size="md",
                                   elem_id="train-load")
            save = gr.Button("Save config (YAML)", size="md", elem_id="train-save")
    saved = gr.File(label="Saved config", visible=False, interactive=False, elem_id="train-saved")
    summary = gr.Markdown(elem_id="train-summary")
    for group in form.groups()[1:]:
        with gr.Accordion(group, open=group in OPEN_GROUPS, elem_id=f"group-{group.lower()}"):
            group_specs = [s for s in specs if s.group == group]
            short = [s for s in group_specs if not s.multiline]
            for i in range(0, len(short), 3):
                with gr.Row():
                    for spec in short[i:i + 3]:
                        field(spec)
            for spec in group_specs:
                if spec.multiline:
                    field(spec)
            if group == "Tracking":
                gr.Markdown(_wandb_note(), elem_id="train-wandb-note")
    with gr.Accordion("Before you launch: estimate, resolved config, CLI command", open=True):
        gpu = gr.Dropdown(choices=list(gpus.GPUS), value=gpus.detected_gpu() or gpus.REFERENCE_GPU,
                          label="Estimate for GPU", info="This machine's GPU when it has one; else pick the one you "
                          "plan to train on.", elem_id="train-gpu")
        estimate_md = gr.Markdown(estimate_text.describe(RunConfig(), cuda=cuda_available()), elem_id="train-estimate")
        with gr.Row():
            config_yaml = gr.Code(RunConfig().to_yaml(), language="yaml", label="Resolved config", max_lines=30,
                                  interactive=False, elem_id="train-config-yaml")
            cli = gr.Code(form.cli_command(RunConfig()), language="shell", label="Equivalent CLI command",
                          interactive=False, elem_id="train-cli")
    launch = gr.Button("Launch training", variant="primary", elem_id="train-launch")
    launch_msg = gr.Markdown(elem_id="train-launch-msg")
    return {"fields": fields, "errors": errors, "preset": preset, "load": load, "save": save, "saved": saved,
            "summary": summary, "gpu": gpu, "estimate": estimate_md, "config_yaml": config_yaml, "cli": cli,
            "launch": launch, "launch_msg": launch_msg}


# ---- handlers ---------------------------------------------------------------------------------------------

def _validate(values: dict[str, Any]) -> tuple[RunConfig | None, list[str]]:
    try:
        config = form.values_to_config(values)
    except ConfigError as exc:
        return None, exc.errors
    return config, tracking.tracking_problems(config)


def _error_updates(paths: list[str], problems: list[str]) -> tuple[list[Any], str]:
    """One update per field error box, and the summary line (problems naming no field go there in full)."""
    by_field = form.errors_by_field(problems)
    labels = {s.path: s.label for s in form.form_spec()}
    boxes = [gr.Markdown(value="\n".join(f"⚠️ {m}" for m in by_field[p]), visible=True) if p in by_field
             else gr.Markdown(value="", visible=False) for p in paths]
    if not problems:
        return boxes, ""
    named = [f"**{labels[p]}** (`{p}`)" for p in by_field if p]
    general = by_field.get("", [])
    text = f"⚠️ {len(problems)} problem{'s' if len(problems) > 1 else ''} to fix before launch"
    text += (": " + ", ".join(named) if named else "") + "."
    if general:
        text += "\n\n" + "\n".join(f"- {g}" for g in general)
    return boxes, text


def wire(train_ui: dict[str, Any], runs_ui: dict[str, Any], tabs: gr.Tabs) -> None:
    fields: dict[str, Any] = train_ui["fields"]
    paths = list(fields)
    components = [fields[p] for p in paths]
    error_boxes = [train_ui["errors"][p] for p in paths]

    def collect(data: dict[Any, Any]) -> dict[str, Any]:
        return {p: data[fields[p]] for p in paths}

    def review(data: dict[Any, Any]) -> tuple[Any, ...]:
        config, problems = _validate(collect(data))
        boxes, summary = _error_updates(paths, problems)
        if config is None:
            return (summary, gr.skip(), gr.skip(), gr.skip(), *boxes)
        return (summary, estimate_text.describe(config, data[train_ui["gpu"]], cuda=cuda_available()),
                config.to_yaml(), form.cli_command(config), *boxes)

    gr.on([c.change for c in components] + [train_ui["gpu"].change], review,
          inputs={*components, train_ui["gpu"]},
          outputs=[train_ui["summary"], train_ui["estimate"], train_ui["config_yaml"], train_ui["cli"], *error_boxes],
          trigger_mode="always_last", show_progress="hidden", api_name="review_config")

    def apply_preset(label: str) -> list[Any]:
        config = PRESETS[PRESET_LABELS[label]]()
        values = form.config_to_values(config)
        return [values[p] for p in paths]

    train_ui["preset"].input(apply_preset, train_ui["preset"], components, api_name="apply_preset")

    def launch(data: dict[Any, Any], request: gr.Request) -> tuple[Any, ...]:
        guard(request, "train")
        config, problems = _validate(collect(data))
        if config is not None:
            problems += uploads.data_file_problems(config.data)
        boxes, summary = _error_updates(paths, problems)
        if config is None or problems:
            return (*boxes, summary, "Not launched: fix the settings marked above.", gr.skip(), gr.skip())
        run = enqueue(config)
        message = f"Queued run {run.id} ({run.name}). Follow it in **Runs**."
        return (*boxes, summary, message, run.id, gr.Tabs(selected="runs"))

    train_ui["launch"].click(
        launch, inputs=set(components),
        outputs=[*error_boxes, train_ui["summary"], train_ui["launch_msg"], runs_ui["selected_run"], tabs],
        api_name="launch_training", concurrency_limit=1)

    def save_config(data: dict[Any, Any]) -> tuple[Any, ...]:
        config, problems = _validate(collect(data))
        if config is None:  # tracking problems do not stop a save: the file may be for another machine
            boxes, summary = _error_updates(paths, problems)
            return (gr.File(visible=False), summary, *boxes)
        name = "".join(c if c.isalnum() or c in "-_" else "-" for c in (config.name or "run-config"))
        path = Path(tempfile.mkdtemp(prefix="medcot-config-")) / f"{name}.yaml"
        path.write_text(config.to_yaml(), encoding="utf-8")
        return (gr.File(value=str(path), visible=True), "", *_error_updates(paths, [])[0])

    train_ui["save"].click(save_config, inputs=set(components),
                           outputs=[train_ui["saved"], train_ui["summary"], *error_boxes], api_name="save_config")

    def load_config(file: str | None, request: gr.Request) -> list[Any]:
        guard(request, "upload")
        if not file:
            return [gr.skip()] * len(paths) + [gr.skip()]
        try:
            config = RunConfig.load(file)
        except ConfigError as exc:
            lines = "\n".join(f"- {e}" for e in exc.errors)
            return [gr.skip()] * len(paths) + [f"⚠️ Could not load {Path(file).name}; the form is unchanged:\n"
                                                f"{lines}"]
        values = form.config_to_values(config)
        return [values[p] for p in paths] + [f"Loaded {Path(file).name}."]

    train_ui["load"].upload(load_config, train_ui["load"], [*components, train_ui["summary"]],
                            api_name="upload_config")
