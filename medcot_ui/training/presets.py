"""Named starting points for the Train form and the CLI (``medcot config --preset NAME``)."""

from __future__ import annotations

from collections.abc import Callable

from medcot_ui.training.config import RunConfig
from medcot_ui.settings import DEMO_MODEL_ID


def recipe() -> RunConfig:
    """The reference walk-through: 60 steps of LoRA on 500 rows of medical-o1-reasoning-SFT."""
    return RunConfig(name="reference-recipe")


def quick_demo() -> RunConfig:
    """The demo model and data: a few seconds of training on a CPU, no network needed."""
    return RunConfig.model_validate({
        "name": "quick-demo",
        "model": {"base_model": DEMO_MODEL_ID, "max_seq_length": 1024, "load_in_4bit": False},
        "lora": {"gradient_checkpointing": "false"},
        "training": {"max_steps": 30, "logging_steps": 1, "save_steps": 10, "warmup_steps": 2,
                     "learning_rate": 1e-3, "optim": "adamw_torch", "gradient_accumulation_steps": 1},
        "data": {"source": "demo", "split": "train", "eval_size": 8},
    })


def full_epoch() -> RunConfig:
    """The recipe's settings for one full epoch over the whole English config (about 25 k rows)."""
    return RunConfig.model_validate({
        "name": "full-epoch",
        "training": {"max_steps": 0, "num_train_epochs": 1.0, "save_steps": 200, "eval_steps": 200},
        "data": {"split": "train", "eval_size": 200},
    })


def fast() -> RunConfig:
    """The recipe with padding-free packing: rows are packed into 2048-token sequences without padding and
    never attend to each other (position ids restart per row). Measured on an H200 with a random-init 8B:
    1.2x the recipe's real tokens/s at +0.2 GB peak memory (docs/BENCHMARKS.md). Each step now holds about
    16 k tokens instead of ~7 k, so 60 steps cover about twice the rows."""
    config = recipe().with_overrides({"training.packing": True})
    return config.with_overrides({"name": "fast-packed"})


def grpo_quick() -> RunConfig:
    """GRPO on the demo model and the demo multiple-choice file: 2 questions x 4 completions a step, on a CPU."""
    return quick_demo().with_overrides({
        "name": "grpo-quick", "training.method": "grpo", "training.max_steps": 12, "training.save_steps": 4,
        "training.per_device_train_batch_size": 4, "training.gradient_accumulation_steps": 2,
        "training.learning_rate": 5e-3, "grpo.num_generations": 4, "grpo.max_completion_length": 24})


def grpo_recipe() -> RunConfig:
    """GRPO on the recipe's 8B in 4-bit: 8 questions x 8 completions of up to 512 tokens a step."""
    return recipe().with_overrides({
        "name": "grpo-recipe", "training.method": "grpo", "training.per_device_train_batch_size": 8,
        "training.gradient_accumulation_steps": 8, "training.learning_rate": 5e-6, "training.logging_steps": 1,
        "training.max_steps": 100})


def starting_form() -> RunConfig:
    """What the Train form opens with: the recipe's settings on the bundled demo data, which needs no network
    (the Dataset tab opens on the same data; a preset never changes the data section)."""
    return RunConfig().with_overrides({"data.source": "demo", "data.split": "train", "data.eval_size": 8})


PRESETS: dict[str, Callable[[], RunConfig]] = {"recipe": recipe, "demo": quick_demo, "full-epoch": full_epoch,
                                               "fast": fast, "grpo-quick": grpo_quick, "grpo-recipe": grpo_recipe}
# What the Train form's preset menu shows.
PRESET_LABELS: dict[str, str] = {"Reference recipe (60 steps)": "recipe", "Quick demo (CPU)": "demo",
                                 "Full epoch": "full-epoch", "Fast: packed (GPU)": "fast",
                                 "GRPO quick (demo, CPU)": "grpo-quick", "GRPO recipe (8B)": "grpo-recipe"}
