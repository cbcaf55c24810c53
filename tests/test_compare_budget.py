"""The Compare tab's GPU memory budget counts the model the way the Train estimate does."""

from __future__ import annotations

from pathlib import Path

from medcot_ui.compare.gpu_budget import comparison_bytes, comparison_shape
from medcot_ui.training.config import RunConfig
from medcot_ui.training.estimate import estimate
from medcot_ui.training.model_shape import model_shape


def test_a_comparisons_weights_are_the_train_estimates_parameters_at_two_bytes_each() -> None:
    config = RunConfig()  # the recipe's 8B model: its shape is known without a download
    shape = comparison_shape(config.model.base_model)
    tokens = 2000
    weights = comparison_bytes(shape, tokens) - comparison_bytes(shape, tokens, include_weights=False)
    assert weights == 2 * estimate(config).params
    assert comparison_bytes(shape, 2 * tokens) > comparison_bytes(shape, tokens), "a longer answer needs more cache"


def test_a_loaded_models_own_config_gives_the_shape_the_estimate_reads_from_its_config_json(
        built_demo_model: Path, home: Path) -> None:
    from transformers import AutoConfig

    from medcot_ui.settings import DEMO_MODEL_ID

    # Named as a model no table knows: only the loaded model's config can give its shape.
    from_loaded = comparison_shape("nobody/unknown-model", AutoConfig.from_pretrained(built_demo_model))
    from_estimate, _ = model_shape(DEMO_MODEL_ID)
    assert from_estimate is not None and from_loaded.params == from_estimate.params
    assert from_loaded.hd == from_estimate.hd and from_loaded.kv_heads == from_estimate.kv_heads
