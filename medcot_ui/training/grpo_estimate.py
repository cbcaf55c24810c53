"""The Train form's estimate for a GRPO run, in words, from the one GRPO step measured on a GPU.

A GRPO step is mostly generation, which the SFT estimate does not model; so instead of a model, one measurement
(docs/BENCHMARKS.md, "GRPO on the GPU"): the Llama-3.1-8B shape in 4-bit with Unsloth on an H100, 64 completions
of 512 tokens per step (every one ran to the limit), prompts of about 250 tokens: 68.6 s generating, 16.9 s
training, 30.1 GB of GPU memory at peak. Other settings are scaled from it (generation with the completion
length, and with the number of completions beyond 64; training with the tokens trained on), and the text says so.
Other models and machines get no numbers: nothing was measured for them.
"""

from __future__ import annotations

from medcot_ui.training.config import RunConfig
from medcot_ui.training.model_shape import RECIPE_SHAPE, model_shape
from medcot_ui.units import rough_duration

GENERATION_S, TRAINING_S, PEAK_GB = 68.6, 16.9, 30.1
COMPLETIONS, COMPLETION_TOKENS, PROMPT_TOKENS = 64, 512, 250
MEASURED_ON = "an H100 (Unsloth, 4-bit)"


def completions_per_step(config: RunConfig) -> int:
    t = config.training
    return t.per_device_train_batch_size * t.gradient_accumulation_steps * t.num_processes


def _measured_shape(config: RunConfig) -> bool:
    """The recipe's 8B shape (vocabulary and tying aside: they barely move a GRPO step)."""
    shape, _ = model_shape(config.model.base_model)
    key = ("hidden", "layers", "heads", "kv_heads", "intermediate")
    return shape is not None and all(getattr(shape, k) == getattr(RECIPE_SHAPE, k) for k in key)


def describe_grpo(config: RunConfig, cuda: bool) -> str:
    """Markdown: what a step does, and for the measured model shape on a GPU, the time per step and the run."""
    g, completions = config.grpo, completions_per_step(config)
    what = (f"Each step samples {g.num_generations} completions of up to {g.max_completion_length} tokens for each of "
            f"{completions // g.num_generations} questions ({completions} completions), rewards them, then trains.")
    if not (cuda and config.model.load_in_4bit and _measured_shape(config)):
        why = ("no GPU on this machine" if not cuda else
               "only the 8 B Llama shape in 4-bit has been measured")
        return (f"{what} No GRPO time estimate here ({why}); a step's time shows in the Runs tab from the first "
                "step on. *GRPO quick* runs a step in under a second on a 2-core CPU.")
    length = g.max_completion_length / COMPLETION_TOKENS
    generation = GENERATION_S * length * max(1.0, completions / COMPLETIONS)
    training = TRAINING_S * (completions * (PROMPT_TOKENS + g.max_completion_length)
                             / (COMPLETIONS * (PROMPT_TOKENS + COMPLETION_TOKENS)))
    step = generation + training
    return (f"{what}\n\nAbout **{step:.0f} s per step** ({generation:.0f} s generating, {training:.0f} s training), so "
            f"**{rough_duration(step * config.training.max_steps)}** for {config.training.max_steps} steps, and about "
            f"**{PEAK_GB:.0f} GB** of GPU memory at the measured size. Basis: one measured step on {MEASURED_ON} with "
            f"{COMPLETIONS} completions of {COMPLETION_TOKENS} tokens that all ran to the limit, scaled to these "
            "settings; a model that ends its answers sooner generates less. More or longer completions need more "
            "memory than measured.")
