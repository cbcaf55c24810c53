"""The Train estimate: matches the reference measurements, moves the right way, includes starting and loading the
model, and says it in time and memory with the GPU it assumes."""

from __future__ import annotations

import re

import pytest

from medcot_ui.training import estimate, estimate_text
from medcot_ui.training.config import RunConfig
from medcot_ui.training.model_shape import model_shape
from medcot_ui.training.presets import quick_demo

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_the_recipe_model_has_8_billion_parameters_and_42_million_lora_parameters():
    shape, source = model_shape("unsloth/DeepSeek-R1-Distill-Llama-8B")
    assert "known shape" in source
    assert shape.params == pytest.approx(8.03e9, rel=0.002)
    assert shape.lora_params(16, ALL) == pytest.approx(42e6, rel=0.01)  # recipe.md: about 42 M (0.52 %)


def test_the_demo_models_parameter_count_is_read_from_its_config_and_matches_the_real_model(home):
    from transformers import AutoModelForCausalLM

    shape, source = model_shape("demo:tiny-llama")
    assert "config.json" in source
    model = AutoModelForCausalLM.from_pretrained(home / "models" / "demo-tiny-llama")
    assert shape.params == sum(p.numel() for p in model.parameters())


def test_the_estimate_matches_the_h200_reference_measurements():
    unsloth = estimate.estimate(RunConfig(), gpu="H200 (141 GB)", backend="unsloth")
    assert unsloth.seconds_per_step == pytest.approx(0.94, rel=0.02)
    assert unsloth.tokens_per_s == pytest.approx(6900, rel=0.03)
    assert unsloth.total_gib == pytest.approx(6.5, rel=0.15)
    packed = estimate.estimate(RunConfig().with_overrides({"training.packing": True}), backend="unsloth")
    assert packed.seconds_per_step == pytest.approx(1.43, rel=0.02)
    assert packed.tokens_per_s == pytest.approx(11400, rel=0.03)
    assert packed.total_gib == pytest.approx(6.8, rel=0.15)
    transformers = estimate.estimate(RunConfig(), gpu="H200 (141 GB)", backend="transformers")
    assert transformers.seconds_per_step == pytest.approx(2.04, rel=0.02)
    assert transformers.tokens_per_s == pytest.approx(3200, rel=0.03)
    assert transformers.total_gib == pytest.approx(10.1, rel=0.15)
    rows = {r["what"]: r for r in estimate.calibration()}
    assert all(abs(r["peak error"]) < 0.15 for r in rows.values() if r["peak error"] is not None)
    # Out of sample (nothing was fitted to it): the walk-through's T4 took about 20 s/step.
    assert abs(rows["recipe, Unsloth, T4 (walk-through, not fitted)"]["s/step error"]) < 0.5


def test_a_whole_run_includes_starting_and_loading_the_model_and_matches_measured_runs(home):
    demo = estimate.estimate(quick_demo(), cpu=True)
    assert demo.startup_s >= 5 and demo.run_seconds(30) == pytest.approx(demo.startup_s + 30 * demo.seconds_per_step)
    runs = {r["what"]: r for r in estimate.whole_run_calibration()}
    assert set(runs) == {"Quick demo, CPU (2-core VM, queued)", "recipe 40 steps, Unsloth, H200 (app)"}
    assert all(abs(r["error"]) < 0.35 for r in runs.values()), runs
    # Reading a 16 GB checkpoint takes longer than a tiny one; a model not on this machine is downloaded first.
    recipe = estimate.estimate(RunConfig(), backend="unsloth")
    assert recipe.startup_s > estimate.STARTUP_S["unsloth"] + 5 and recipe.download_gb == pytest.approx(16, rel=0.05)
    assert demo.download_gb == 0


def test_bigger_settings_cost_more_memory_and_time_and_slower_gpus_take_longer():
    base = estimate.estimate(RunConfig(), backend="unsloth")
    bigger_batch = estimate.estimate(RunConfig().with_overrides({"training.per_device_train_batch_size": 8}),
                                     backend="unsloth")
    assert bigger_batch.total_gib > base.total_gib and bigger_batch.seconds_per_step > 1.5 * base.seconds_per_step
    no_4bit = estimate.estimate(RunConfig().with_overrides({"model.load_in_4bit": False}), backend="unsloth")
    assert no_4bit.memory_gib["frozen weights"] == pytest.approx(8.03e9 * 2 / 2**30, rel=0.01)
    no_checkpointing = estimate.estimate(RunConfig().with_overrides({"lora.gradient_checkpointing": "false"}),
                                         backend="unsloth")
    assert no_checkpointing.memory_gib["activations"] > 10 * base.memory_gib["activations"]
    assert no_checkpointing.seconds_per_step < base.seconds_per_step  # no recomputed forward
    t4 = estimate.estimate(RunConfig(), gpu="T4 (16 GB)", backend="unsloth")
    assert t4.seconds_per_step > 10 * base.seconds_per_step
    packed = estimate.estimate(RunConfig().with_overrides({"training.packing": True}), backend="unsloth")
    assert packed.tokens_per_step == 8 * 2048


def _visible(text: str) -> str:
    """What shows before 'How this is estimated' is unfolded."""
    return text.split("<details>")[0]


def test_four_gpus_in_data_parallel_hold_a_full_copy_each_and_take_four_times_the_tokens_per_step():
    one = estimate.estimate(RunConfig(), backend="unsloth")
    four_config = RunConfig().with_overrides({"training.num_processes": 4})
    four = estimate.estimate(four_config, backend="unsloth")
    assert four.total_gib == pytest.approx(one.total_gib), "memory is per GPU"
    assert four.seconds_per_step == pytest.approx(one.seconds_per_step)
    assert four.tokens_per_step == pytest.approx(4 * one.tokens_per_step) and four.processes == 4
    text = estimate_text.describe(four_config, cuda=True)
    assert "**4 GPUs** (data parallel" in _visible(text)
    assert "32 rows (batch 2 x accumulation 4 x 4 processes)" in text


def test_the_description_speaks_in_time_and_memory_names_the_gpu_and_flags_what_does_not_fit():
    config = RunConfig().with_overrides({"model.load_in_4bit": False})
    text = estimate_text.describe(config, gpu="T4 (16 GB)", cuda=True)
    shown = _visible(text)
    assert "**T4 (16 GB)**" in shown and "more than the 15.7 GB it has" in shown
    assert "whole run" in shown and re.search(r"\| \d+ min \|", shown)
    assert "downloads the model (16 GB)" in shown
    assert "TFLOP" not in shown and "GiB" not in shown
    assert "6 x (params + attention) x tokens" in text and "810 tokens" in text  # the basis, folded away
    assert "Whole runs:" in text and "66.5 s" in text


def test_on_a_cpu_machine_the_estimate_says_so_with_the_whole_run_time(home):
    shown = _visible(estimate_text.describe(quick_demo(), cuda=False))
    assert "No GPU on this machine" in shown
    assert re.search(r"On this CPU the run takes \*\*about \d+ s\*\*: \d+ s to start and load the model, then 30 "
                     r"steps of [\d.]+ s", shown)
    assert "Planning for a GPU: **H200 (141 GB)** (no GPU here" in shown
    assert "impractical" in estimate_text.describe(RunConfig(), cuda=False)


def test_an_unknown_model_gets_no_numbers_but_a_reason():
    config = RunConfig().with_overrides({"model.base_model": "someone/unknown-model"})
    assert estimate.estimate(config) is None
    assert "No estimate for `someone/unknown-model`" in estimate_text.describe(config, cuda=True)


@pytest.mark.parametrize("load, said", [(2.8, "up to 1.4 times as long"), (40.0, "up to 10.0 times as long")])
def test_a_busy_machine_says_how_much_longer_in_a_ratio_that_is_never_1x(monkeypatch: pytest.MonkeyPatch,
                                                                        load: float, said: str) -> None:
    monkeypatch.setattr(estimate_text.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(estimate_text.os, "cpu_count", lambda: 2)
    note = estimate_text._busy_note()
    assert f"This machine is busy (load {load:.0f} on 2 cores): expect it to take {said}." in note
    monkeypatch.setattr(estimate_text.os, "getloadavg", lambda: (1.5, 1.5, 1.5))
    assert estimate_text._busy_note() == "", "not busy: no note"
