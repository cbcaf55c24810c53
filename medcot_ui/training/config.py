"""The one typed run configuration.

Defaults are the reference recipe (shared/docs/recipe.md). The same schema generates the Train form (labels,
help and groups come from the field metadata), is stored as JSON on the run row, is saved and loaded as
YAML, and is what the CLI reads. Validation errors name the field and the allowed range.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from pydantic.fields import FieldInfo

from medcot_ui.errors import MedcotError
from medcot_ui.training.prompts import RECIPE_TEMPLATE, validate_template

RECIPE_MODEL = "unsloth/DeepSeek-R1-Distill-Llama-8B"
RECIPE_DATASET = "FreedomIntelligence/medical-o1-reasoning-SFT"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _f(default: Any, label: str, help: str, **kw: Any) -> Any:
    """A field with the label/help the form shows."""
    return Field(default, title=label, description=help, **kw)


def _is_number(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_number(a) for a in get_args(annotation))
    return annotation in (int, float)


class _Section(BaseModel):
    # Unknown keys are errors: a typo in a YAML file must not be silently ignored. NaN and infinity are no
    # setting's value, and pydantic's default would report a NaN as out of range rather than as not a number.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would take `true` as 1: `--set training.max_steps=true` is a mistake, not a step count.
        if isinstance(value, bool) and _is_number(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        return value


class ModelSettings(_Section):
    base_model: str = _f(RECIPE_MODEL, "Base model",
                         "Hub id or local folder of the model to fine-tune. 'demo:tiny-llama' is a tiny model "
                         "built on this machine from the demo data: it works offline and on CPU.", min_length=1)
    max_seq_length: int = _f(2048, "Max sequence length",
                             "Tokens per training row; longer rows are truncated.", ge=64, le=32768)
    load_in_4bit: bool = _f(True, "Load in 4-bit", "QLoRA: load the frozen base in 4-bit (CUDA only; "
                            "ignored on CPU).")
    backend: Literal["auto", "unsloth", "transformers"] = _f(
        "auto", "Backend", "auto = Unsloth when CUDA and unsloth are installed, else transformers + PEFT.")


class LoraSettings(_Section):
    r: int = _f(16, "LoRA rank (r)", "Rank of the low-rank update; higher = more capacity and memory.",
                ge=1, le=256)
    alpha: int = _f(16, "LoRA alpha", "Scale of the update (alpha / r).", ge=1, le=1024)
    dropout: float = _f(0.0, "LoRA dropout", "Dropout on the LoRA path (0 is fastest with Unsloth).",
                        ge=0.0, le=0.5)
    target_modules: list[str] = _f(list(LORA_TARGETS), "Target modules",
                                   "Linear layers that get a LoRA adapter.", min_length=1)
    gradient_checkpointing: Literal["unsloth", "true", "false"] = _f(
        "unsloth", "Gradient checkpointing", "'unsloth' offloads activations (less memory); 'true' is the "
        "transformers version; 'false' is fastest but uses the most memory.")
    use_rslora: bool = _f(False, "Rank-stabilised LoRA", "Scale by alpha / sqrt(r) instead of alpha / r.")
    random_state: int = _f(3407, "LoRA init seed", "Seed for the adapter's initial weights.", ge=0)

    @field_validator("target_modules")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        cleaned = [m.strip() for m in v if m.strip()]
        if not cleaned:
            raise ValueError("at least one module name is required")
        return cleaned


class TrainingSettings(_Section):
    method: Literal["sft", "grpo"] = _f(
        "sft", "Method", "sft = supervised fine-tuning on the reasoning traces (the recipe); grpo = reinforcement "
        "on multiple-choice questions, rewarded when the answer letter is right (settings under 'Reinforcement').")
    per_device_train_batch_size: int = _f(2, "Batch size per device", "Rows per forward pass.", ge=1, le=256)
    gradient_accumulation_steps: int = _f(4, "Gradient accumulation",
                                          "Forward passes per optimizer step.", ge=1, le=1024)
    num_processes: int = _f(1, "GPUs (processes)", "Data-parallel training processes, one per GPU (torchrun); "
                            "each step then takes batch size x accumulation x processes rows. On a machine "
                            "without a GPU the processes share the CPU.", ge=1, le=1024)
    max_steps: int = _f(60, "Max steps", "Optimizer steps to run; 0 = run for 'Epochs' instead.",
                        ge=0, le=1_000_000)
    num_train_epochs: float = _f(1.0, "Epochs", "Used when Max steps is 0.", gt=0.0, le=100.0)
    learning_rate: float = _f(2e-4, "Learning rate", "Peak learning rate.", gt=0.0, le=1.0)
    warmup_steps: int = _f(5, "Warmup steps", "Linear warmup from 0 to the peak rate.", ge=0, le=100_000)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = _f(
        "linear", "LR schedule", "Shape of the learning-rate decay after warmup.")
    weight_decay: float = _f(0.01, "Weight decay", "AdamW weight decay.", ge=0.0, le=1.0)
    optim: Literal["adamw_8bit", "adamw_torch", "paged_adamw_8bit", "adafactor"] = _f(
        "adamw_8bit", "Optimizer", "adamw_8bit needs bitsandbytes on CUDA; on CPU adamw_torch is used.")
    logging_steps: int = _f(10, "Log every N steps", "A metrics row is written every N steps.", ge=1, le=10_000)
    save_steps: int = _f(20, "Checkpoint every N steps", "Checkpoints make resume possible.", ge=1, le=100_000)
    save_total_limit: int = _f(2, "Checkpoints kept", "Older checkpoints are deleted.", ge=1, le=100)
    eval_steps: int = _f(0, "Evaluate every N steps", "Eval loss on the held-out rows; 0 = off.",
                         ge=0, le=100_000)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = _f(
        "auto", "Precision", "auto = bf16 where supported, else fp16 on CUDA, fp32 on CPU.")
    packing: bool = _f(False, "Packing (padding-free)", "Pack several rows into one sequence without padding "
                       "(rows never attend to each other). Faster on GPU.")
    seed: int = _f(3407, "Seed", "Seed for data order and dropout.", ge=0)


class DataSettings(_Section):
    source: Literal["hub", "file", "demo"] = _f("hub", "Data source",
                                               "A Hub dataset, an uploaded file, or the bundled demo data.")
    dataset_id: str = _f(RECIPE_DATASET, "Hub dataset id", "Used when the source is 'hub'.")
    dataset_config: str = _f("en", "Dataset config", "Hub dataset configuration (e.g. en, zh, en_mix).")
    split: str = _f("train[0:500]", "Split or slice", "e.g. train, train[0:500], train[:10%].", min_length=1)
    file_path: str = _f("", "Data file", "JSON, JSONL, CSV or Parquet; used when the source is 'file'.")
    # Uploads are stored under their content hash; the name a person uploaded the file as travels with the run
    # (never stored per file, where another person uploading the same bytes would see it).
    file_name: str = _f("", "Uploaded as", "The data file's name when it was uploaded (shown instead of the "
                        "stored copy's name).", max_length=255)
    question_column: str = _f("Question", "Question column", "Column holding the question.", min_length=1)
    reasoning_column: str = _f("Complex_CoT", "Reasoning column", "Column holding the chain of thought.",
                               min_length=1)
    answer_column: str = _f("Response", "Answer column", "Column holding the final answer.", min_length=1)
    template: Literal["recipe", "chat_template", "custom"] = _f(
        "recipe", "Prompt format", "recipe = the walk-through's instruction format; chat_template = the "
        "model's own chat template (reasoning kept in the target); custom = your template below.")
    custom_template: str = _f(RECIPE_TEMPLATE, "Custom template",
                              "Must contain {question}, {reasoning} and {answer} in that order.")
    eval_size: int = _f(0, "Held-out rows", "Rows kept out of training for eval loss and Compare samples.",
                        ge=0, le=100_000)
    split_seed: int = _f(3407, "Split seed", "Seed of the train / held-out split.", ge=0)

    def file_label(self) -> str:
        """The data file as people know it: the name it was uploaded as, else the file's own name."""
        return self.file_name or Path(self.file_path).name

    @field_validator("custom_template")
    @classmethod
    def _template(cls, v: str) -> str:
        validate_template(v)
        return v

    @model_validator(mode="after")
    def _source_needs(self) -> "DataSettings":
        if self.source == "file" and not self.file_path:
            raise ValueError("file_path: required when the source is 'file'")
        if self.source == "hub" and not self.dataset_id:
            raise ValueError("dataset_id: required when the source is 'hub'")
        return self


class GRPOSettings(_Section):
    """Reinforcement with a verifiable reward (TRL's GRPOTrainer): used when training.method is grpo."""

    questions: Literal["demo", "file"] = _f(
        "demo", "Questions", "Multiple-choice questions to reinforce on: the bundled demo file, or a file in the "
        "MedQA / MedMCQA / PubMedQA layout or ours (question, options, answer).")
    questions_file: str = _f("", "Questions file", "JSONL, CSV or Parquet; used when Questions is 'file'.")
    held_out_questions: int = _f(4, "Held-out questions", "Questions kept out of reinforcement (Evaluate them "
                                 "afterwards).", ge=0, le=100_000)
    start_from_run: int = _f(0, "Continue run", "0 = a new adapter on the base model; a finished SFT run's id "
                             "continues its adapter (same base model and LoRA settings).", ge=0)
    num_generations: int = _f(8, "Completions per question", "The group GRPO compares: each completion's reward "
                              "against the group's mean.", ge=2, le=256)
    max_completion_length: int = _f(512, "Max completion tokens", "Longer completions are cut (and score no "
                                    "answer).", ge=4, le=32768)
    generation: Literal["generate", "continuous_batching"] = _f(
        "generate", "Generation during training", "How completions are sampled: transformers' generate on a padded "
        "batch (the one measured working on the GPU), or its continuous-batching engine (TRL's "
        "use_transformers_continuous_batching: refused with Unsloth, where it failed; docs/BENCHMARKS.md).")
    temperature: float = _f(1.0, "Sampling temperature", "Completions must differ for the group to teach "
                            "anything.", gt=0.0, le=4.0)
    beta: float = _f(0.04, "KL weight (beta)", "Pull towards the starting model; 0 = none (and no reference "
                     "pass).", ge=0.0, le=10.0)
    correctness_weight: float = _f(1.0, "Reward: right answer", "1 when the extracted letter is the key.",
                                   ge=0.0, le=100.0)
    format_weight: float = _f(0.5, "Reward: format", "1 for one closed <think> block followed by an answer that "
                              "names one letter.", ge=0.0, le=100.0)
    length_weight: float = _f(0.0, "Reward: length penalty", "Minus the completion's share of Max completion "
                              "tokens (0 = off).", ge=0.0, le=100.0)


class TrackingSettings(_Section):
    report_to: Literal["none", "wandb"] = _f("none", "Report to", "Weights & Biases needs WANDB_API_KEY in the "
                                             "environment (or offline mode). Our own metrics are always kept.")
    wandb_project: str = _f("medcot-studio", "W&B project", "Project name on Weights & Biases.")
    wandb_mode: Literal["online", "offline"] = _f("online", "W&B mode", "offline writes locally, no network.")


class RunConfig(_Section):
    name: str = _f("", "Run name", "Shown in the Runs tab; empty = generated.", max_length=100)
    model: ModelSettings = Field(default_factory=ModelSettings, title="Model")
    lora: LoraSettings = Field(default_factory=LoraSettings, title="LoRA")
    training: TrainingSettings = Field(default_factory=TrainingSettings, title="Training")
    data: DataSettings = Field(default_factory=DataSettings, title="Data")
    grpo: GRPOSettings = Field(default_factory=GRPOSettings, title="Reinforcement (GRPO)")
    tracking: TrackingSettings = Field(default_factory=TrackingSettings, title="Tracking")

    @model_validator(mode="after")
    def _grpo_batch(self) -> "RunConfig":
        t, g = self.training, self.grpo
        if t.method != "grpo":
            return self
        if g.questions == "file" and not g.questions_file:
            raise ValueError("grpo.questions_file: required when Questions is 'file'")
        # TRL generates batch x accumulation completions at a time, in whole groups of num_generations.
        if (t.per_device_train_batch_size * t.gradient_accumulation_steps) % g.num_generations:
            raise ValueError(f"grpo.num_generations: {g.num_generations} must divide batch size x gradient "
                             f"accumulation ({t.per_device_train_batch_size} x {t.gradient_accumulation_steps}), "
                             "the completions generated per step")
        if t.packing:
            raise ValueError("training.packing: GRPO scores whole completions; turn packing off")
        if t.num_processes > 1:
            raise ValueError("training.num_processes: GRPO runs in one process here")
        return self

    @property
    def job_kind(self) -> str:
        """The job kind that runs this config (both read it back as a RunConfig)."""
        return "grpo" if self.training.method == "grpo" else "train"

    # ---- serialisation -------------------------------------------------------------------------------
    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError([f"JSON: {exc.msg.removesuffix(' at')} at line {exc.lineno}, column {exc.colno}"]) \
                from None
        if not isinstance(data, dict):
            raise ConfigError(["JSON: the top level must be an object of sections"])
        return parse_config(data)

    @classmethod
    def from_yaml(cls, text: str) -> "RunConfig":
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError([f"YAML: {exc}"]) from None
        if not isinstance(data, dict):
            raise ConfigError(["YAML: the top level must be a mapping of sections"])
        return parse_config(data)

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if path.suffix.lower() not in CONFIG_SUFFIXES:
            raise ConfigError([f"{path.name}: a run config is a {', '.join(CONFIG_SUFFIXES)} file"])
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError([f"{path.name}: not UTF-8 text; a run config is YAML or JSON"]) from None
        return cls.from_json(text) if path.suffix.lower() == ".json" else cls.from_yaml(text)

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        """Apply dotted overrides like {'lora.r': 32}; the result is validated as a whole."""
        data = self.model_dump(mode="json")
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if key:
                if section not in data or not isinstance(data[section], dict):
                    raise ConfigError([f"{dotted}: unknown section '{section}'"])
                data[section][key] = value
            else:
                data[section] = value
        return parse_config(data)


class ConfigError(MedcotError, ValueError):
    """Validation failed; ``errors`` holds one readable line per problem, each naming its field."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def _describe(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting"
    elif err["type"] == "finite_number":
        msg = f"must be a number, not {err['input']}"
    # Cross-field validators start their message with the field they blame ("file_path: required ...").
    head, sep, rest = msg.partition(": ")
    if err["type"] == "value_error" and sep and head.isidentifier() and len(loc) <= 1:
        loc, msg = loc + [head], rest
    info = _field_info(tuple(loc))
    bounds = field_bounds(info).text if info is not None and err["type"].endswith(("_than", "_equal")) else ""
    suffix = f" (allowed: {bounds})" if bounds else ""
    return f"{'.'.join(loc)}: {msg}{suffix}" if loc else f"{msg}{suffix}"


def _field_info(loc: tuple[Any, ...]) -> Any:
    model: Any = RunConfig
    info = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    return info


@dataclass(frozen=True)
class Bounds:
    """A numeric setting's allowed range, read from its schema constraints (ge/gt, le/lt)."""

    minimum: float | None = None
    maximum: float | None = None
    text: str = ""  # e.g. ">= 1 and <= 256", as error messages and the form's help show it; "" when unbounded


def field_bounds(info: FieldInfo) -> Bounds:
    """The range of a schema field: the form's number limits and the "(allowed: ...)" of a config error."""
    lo = hi = None
    lo_text = hi_text = ""
    for m in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">")):
            if (value := getattr(m, attr, None)) is not None:
                lo, lo_text = value, f"{sign} {value}"
        for attr, sign in (("le", "<="), ("lt", "<")):
            if (value := getattr(m, attr, None)) is not None:
                hi, hi_text = value, f"{sign} {value}"
    return Bounds(lo, hi, " and ".join(t for t in (lo_text, hi_text) if t))


def parse_config(data: dict[str, Any]) -> RunConfig:
    """Validate a plain dict into a RunConfig or raise ConfigError naming every bad field."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()]) from None


SECTIONS: tuple[str, ...] = ("model", "lora", "training", "data", "grpo", "tracking")


def field_paths() -> list[str]:
    """Every leaf setting as 'section.name' (plus 'name'), in schema order: what the form must show."""
    paths = ["name"]
    for section in SECTIONS:
        paths += [f"{section}.{n}" for n in RunConfig.model_fields[section].annotation.model_fields]
    return paths
