"""The Train form is the run config schema: every setting appears, and every form value lands in the config."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from medcot_ui.training import form
from medcot import _overrides
from medcot_ui.training.config import ConfigError, RunConfig, field_paths
from medcot_ui.training.presets import PRESETS, starting_form


def _changed_value(spec: form.FieldSpec) -> Any:
    """A valid value different from the field's default."""
    if spec.kind == "checkbox":
        return not spec.default
    if spec.kind == "dropdown":
        return [c for c in spec.choices if c != spec.default][-1]  # data.source: "demo" needs no file
    if spec.kind == "list":
        return ["q_proj", "v_proj"]
    if spec.kind == "int":
        return int(spec.default) + 1 if spec.maximum is None or spec.default + 1 <= spec.maximum else spec.default - 1
    if spec.kind == "number":
        return spec.default / 2 if spec.default else 0.125
    if spec.multiline:
        return "Q: {question}\nThink: {reasoning}\nA: {answer}"
    return f"{spec.default}-changed" if spec.default else "changed"


def test_every_schema_setting_appears_in_the_form_with_its_label_help_and_group():
    specs = form.form_spec()
    assert [s.path for s in specs] == field_paths()
    for spec in specs:
        assert spec.label and spec.label != spec.path, spec.path
        assert spec.help, spec.path
        assert spec.group in form.groups(), spec.path
    by_path = {s.path: s for s in specs}
    assert by_path["lora.r"].kind == "int" and by_path["lora.r"].minimum == 1 and by_path["lora.r"].maximum == 256
    assert "Allowed: >= 1 and <= 256" in by_path["lora.r"].help
    assert by_path["training.learning_rate"].kind == "number"
    assert by_path["model.load_in_4bit"].kind == "checkbox"
    assert by_path["training.optim"].choices == ("adamw_8bit", "adamw_torch", "paged_adamw_8bit", "adafactor")
    assert by_path["lora.target_modules"].kind == "list"
    assert by_path["data.custom_template"].multiline
    assert by_path["model.base_model"].group == "Model" and by_path["tracking.report_to"].group == "Tracking"
    assert form.groups() == ["Run", "Model", "LoRA", "Training", "Data", "Reinforcement (GRPO)", "Tracking"]


def test_the_form_starts_at_the_reference_recipe_and_round_trips_every_preset():
    assert form.values_to_config(form.config_to_values(RunConfig())) == RunConfig()
    for name, make in PRESETS.items():
        config = make()
        assert form.values_to_config(form.config_to_values(config)) == config, name


@pytest.mark.parametrize("path", field_paths())
def test_every_form_value_lands_in_the_config(path):
    spec = {s.path: s for s in form.form_spec()}[path]
    values = form.config_to_values(RunConfig())
    values[path] = _changed_value(spec)
    config = form.values_to_config(values)
    assert form.config_to_values(config)[path] == values[path]
    assert config != RunConfig()


def test_form_widgets_values_are_coerced_like_a_browser_sends_them():
    values = form.config_to_values(RunConfig())
    values.update({"training.max_steps": 300.0, "lora.target_modules": "q_proj, k_proj\nv_proj",
                   "data.dataset_config": None})
    config = form.values_to_config(values)
    assert config.training.max_steps == 300 and isinstance(config.training.max_steps, int)
    assert config.lora.target_modules == ["q_proj", "k_proj", "v_proj"]
    assert config.data.dataset_config == ""


def test_bad_values_come_back_one_line_per_field_naming_it_and_the_allowed_range():
    values = form.config_to_values(RunConfig())
    values.update({"lora.r": 0, "training.learning_rate": None, "training.max_steps": 2.5,
                   "data.source": "file", "data.file_path": ""})
    with pytest.raises(ConfigError) as caught:
        form.values_to_config(values)
    by_field = form.errors_by_field(caught.value.errors)
    assert by_field["lora.r"] == ["Input should be greater than or equal to 1 (allowed: >= 1 and <= 256)"]
    assert by_field["training.learning_rate"] == ["a number is required"]
    assert "integer" in by_field["training.max_steps"][0]
    assert "required when the source is 'file'" in by_field["data.file_path"][0]
    assert "" not in by_field  # every problem was placed next to a field


def test_an_unknown_setting_is_refused_by_name():
    with pytest.raises(ConfigError, match="training.max_stepz: unknown setting"):
        form.values_to_config({"training.max_stepz": 3})


def test_the_cli_command_rebuilds_exactly_the_form_config():
    values = form.config_to_values(PRESETS["demo"]())
    values.update({"training.learning_rate": 2e-05, "name": "my run: v2", "data.split": "train[0:50]",
                   "lora.target_modules": ["q_proj", "v_proj"], "data.template": "custom",
                   "data.custom_template": "Q: {question}\nR: {reasoning}\nA: {answer}"})
    config = form.values_to_config(values)
    text = form.cli_command(config)
    assert "medcot enqueue config.yaml" in text
    # Parse the --set arguments the way a shell and the CLI would.
    words = shlex.split(text.split("changes to the reference recipe:\n", 1)[1].replace("\\\n", " "))
    assert words[:2] == ["medcot", "enqueue"]
    pairs = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    assert RunConfig().with_overrides(_overrides(pairs)) == config
    assert form.cli_command(RunConfig()).rstrip().endswith("medcot enqueue")


def test_the_train_tab_renders_one_widget_per_setting_and_the_runs_tab_exposes_its_contract(home):
    import gradio as gr

    from medcot_ui.hosting.context import AppContext
    from medcot_ui.tabs import runs, train

    with gr.Blocks():
        with gr.Tabs() as tabs:
            with gr.Tab("Train", id="train"):
                train_ui = train.build(AppContext())
            with gr.Tab("Runs", id="runs"):
                runs_ui = runs.build(AppContext())
        train.wire(train_ui, runs_ui, tabs)
        runs.wire(runs_ui, train_ui, tabs)
    assert sorted(train_ui.fields) == sorted(field_paths())
    kinds = {s.path: s.kind for s in form.form_spec()}
    widget = {"checkbox": gr.Checkbox, "dropdown": gr.Dropdown, "list": gr.Dropdown, "int": gr.Number,
              "number": gr.Number, "text": gr.Textbox}
    for path, component in train_ui.fields.items():
        assert isinstance(component, widget[kinds[path]]), path
        assert component.value == form.config_to_values(starting_form())[path], path
    assert isinstance(runs_ui.selected_run, gr.State) and isinstance(runs_ui.table, gr.Dataframe)


def test_a_preset_fills_everything_but_the_data_section_and_the_form_says_which_data_it_trains_on():
    upload = starting_form().with_overrides({"data.source": "file", "data.file_path": "/srv/uploads/ab12.jsonl",
                                             "data.split": "train[0:40]", "data.eval_size": 3})
    for name, preset in PRESETS.items():
        values = {**form.config_to_values(upload), **form.preset_values(preset())}
        config = form.values_to_config(values)
        assert config.data == upload.data, name
        assert config.training == preset().training and config.model == preset().model, name
    line = form.data_summary(upload)
    assert "uploaded file** `ab12.jsonl`" in line and "split `train[0:40]`" in line and "3 rows held out" in line
    assert "demo data" in form.data_summary(starting_form()) and "gibberish" not in form.data_summary(upload)
    assert "answers (in Compare too) are gibberish" in form.data_summary(PRESETS["demo"]())
