"""The one run configuration: recipe defaults, readable validation errors, JSON / YAML / CLI round trips."""

from __future__ import annotations

import pytest

from medcot_ui.training.config import ConfigError, RunConfig, field_paths, parse_config
from medcot_ui.training.presets import PRESETS


def test_the_defaults_are_the_reference_recipe() -> None:
    c = RunConfig()
    assert c.model.base_model == "unsloth/DeepSeek-R1-Distill-Llama-8B"
    assert (c.model.max_seq_length, c.model.load_in_4bit) == (2048, True)
    assert (c.lora.r, c.lora.alpha, c.lora.dropout, c.lora.random_state) == (16, 16, 0.0, 3407)
    assert c.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert c.lora.gradient_checkpointing == "unsloth" and not c.lora.use_rslora
    t = c.training
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.warmup_steps, t.max_steps) == (2, 4, 5, 60)
    assert (t.learning_rate, t.logging_steps, t.optim, t.weight_decay) == (2e-4, 10, "adamw_8bit", 0.01)
    assert (t.lr_scheduler_type, t.seed) == ("linear", 3407)
    assert (c.data.dataset_id, c.data.dataset_config, c.data.split) == (
        "FreedomIntelligence/medical-o1-reasoning-SFT", "en", "train[0:500]")
    assert (c.data.question_column, c.data.reasoning_column, c.data.answer_column) == (
        "Question", "Complex_CoT", "Response")


def test_an_out_of_range_value_is_refused_naming_the_field_and_the_allowed_range() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"lora": {"r": 0}, "training": {"learning_rate": -1}})
    assert "lora.r: Input should be greater than or equal to 1 (allowed: >= 1 and <= 256)" in err.value.errors
    assert any(e.startswith("training.learning_rate:") and "> 0.0" in e for e in err.value.errors)


def test_a_typo_in_a_setting_name_is_an_error_not_silently_ignored() -> None:
    with pytest.raises(ConfigError) as err:
        RunConfig.from_yaml("lora:\n  rank: 32\n")
    assert err.value.errors == ["lora.rank: unknown setting"]


def test_a_choice_outside_the_list_names_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"training": {"optim": "sgd"}})
    assert err.value.errors[0].startswith("training.optim: Input should be 'adamw_8bit'")


def test_a_file_source_without_a_file_names_the_missing_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"data": {"source": "file"}})
    assert err.value.errors == ["data.file_path: required when the source is 'file'"]


def test_a_template_missing_the_reasoning_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"data": {"template": "custom", "custom_template": "Q: {question}\nA: {answer}"}})
    assert "{reasoning} must appear exactly once" in err.value.errors[0]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_round_trips_through_json_and_yaml_unchanged(preset: str) -> None:
    config = PRESETS[preset]()
    assert RunConfig.from_json(config.to_json()) == config
    assert RunConfig.from_yaml(config.to_yaml()) == config


def test_dotted_overrides_are_validated_like_everything_else() -> None:
    c = RunConfig().with_overrides({"lora.r": 32, "training.max_steps": 10})
    assert (c.lora.r, c.training.max_steps) == (32, 10)
    with pytest.raises(ConfigError, match=r"lora.r: .*allowed: >= 1 and <= 256"):
        RunConfig().with_overrides({"lora.r": 1000})


def test_field_paths_list_every_leaf_setting_once() -> None:
    paths = field_paths()
    assert len(paths) == len(set(paths))
    assert {"name", "model.base_model", "lora.r", "training.packing", "data.eval_size", "tracking.report_to"} <= set(paths)
