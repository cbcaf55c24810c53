"""The Train form, derived from the run config schema: one field spec per setting, and values <-> config.

Nothing here is hand-listed: labels, help, kinds, choices, bounds and groups all come from
:class:`medcot_ui.training.config.RunConfig`'s field metadata, so a new setting in the schema appears in the form (and in
the round-trip tests) without touching this module. No Gradio here; ``medcot_ui/tabs/train.py`` renders the specs.
"""

from __future__ import annotations

import json
import shlex
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from medcot_ui.settings import DEMO_MODEL_ID
from medcot_ui.training.config import (SECTIONS, Bounds, ConfigError, RunConfig, field_bounds, field_paths,
                                      parse_config)

RUN_GROUP = "Run"


@dataclass(frozen=True)
class FieldSpec:
    path: str                      # "lora.r", or "name" for the top-level run name
    label: str                     # the schema's title
    help: str                      # the schema's description (+ the allowed range)
    kind: str                      # number | int | checkbox | dropdown | text | list
    default: Any
    group: str                     # the section's title ("Model", "LoRA", ...), "Run" for the run name
    choices: tuple[str, ...] = ()  # dropdown choices (from the Literal type)
    minimum: float | None = None
    maximum: float | None = None
    bounds: str = ""               # human text of the range, e.g. ">= 1 and <= 256"
    multiline: bool = False        # a text whose default spans lines (the custom template)


def _kind(annotation: Any) -> tuple[str, tuple[str, ...]]:
    if typing.get_origin(annotation) is typing.Literal:
        return "dropdown", tuple(str(c) for c in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return "list", ()
    return {bool: "checkbox", int: "int", float: "number"}.get(annotation, "text"), ()


def _spec(path: str, info: Any, group: str) -> FieldSpec:
    kind, choices = _kind(info.annotation)
    bounds = field_bounds(info) if kind in {"int", "number"} else Bounds()
    default = info.get_default(call_default_factory=True)
    help_text = (info.description or "") + (f" Allowed: {bounds.text}." if bounds.text else "")
    return FieldSpec(path=path, label=info.title or path, help=help_text, kind=kind, default=default, group=group,
                     choices=choices, minimum=bounds.minimum, maximum=bounds.maximum, bounds=bounds.text,
                     multiline=isinstance(default, str) and "\n" in default)


def form_spec() -> list[FieldSpec]:
    """Every leaf setting of the schema, in schema order (the same order as :func:`field_paths`)."""
    specs = [_spec("name", RunConfig.model_fields["name"], RUN_GROUP)]
    for section in SECTIONS:
        info = RunConfig.model_fields[section]
        for name, field_info in info.annotation.model_fields.items():
            specs.append(_spec(f"{section}.{name}", field_info, info.title or section))
    return specs


def groups() -> list[str]:
    """Group titles in form order: the run name first, then one per config section."""
    return [RUN_GROUP] + [RunConfig.model_fields[s].title or s for s in SECTIONS]


_SPECS = {s.path: s for s in form_spec()}


def config_to_values(config: RunConfig) -> dict[str, Any]:
    """{path: value} for every form field (lists stay lists)."""
    data = config.model_dump(mode="json")
    out: dict[str, Any] = {}
    for path in field_paths():
        section, _, key = path.partition(".")
        out[path] = data[section][key] if key else data[section]
    return out


def preset_values(config: RunConfig) -> dict[str, Any]:
    """The form values a preset sets: everything but the data section, which stays what the person chose
    (a preset silently switching an upload back to demo data would train on the wrong data)."""
    return {p: v for p, v in config_to_values(config).items() if not p.startswith("data.")}


def data_summary(config: RunConfig) -> str:
    """Which data a run of ``config`` trains on (shown before Launch), and what the demo model can and cannot do."""
    d = config.data
    if d.source == "demo":
        where = "the bundled **demo data** (illustrative rows, not real patients)"
    elif d.source == "file":
        where = f"your **uploaded file** `{d.file_label()}`" if d.file_path else "an uploaded file (none yet)"
    else:
        where = f"the Hub dataset **{d.dataset_id}**" + (f" ({d.dataset_config})" if d.dataset_config else "")
    held = f"{d.eval_size:,} rows held out" if d.eval_size else "no rows held out"
    line = f"**Trains on** {where}, split `{d.split}`, {held}. Change it in the **Dataset** tab or under *Data*."
    if config.model.base_model == DEMO_MODEL_ID:  # said before Launch, not discovered after a long wait in Compare
        line += ("\n\n**The demo model is a tiny random network:** it trains in seconds on a CPU and its loss goes "
                 "down, but its answers (in Compare too) are gibberish. It shows the workflow, not medicine.")
    return line


def _coerce(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    """A form value as the schema expects it, or an error message for a value no schema check can name."""
    if spec.kind in {"int", "number"}:
        if value is None or (isinstance(value, str) and not value.strip()):
            return spec.default, "a number is required"
        if isinstance(value, float) and spec.kind == "int" and value.is_integer():
            return int(value), None
        return value, None
    if spec.kind == "list":
        if isinstance(value, str):  # typed as "q_proj, k_proj" or one per line
            value = [p for chunk in value.splitlines() for p in chunk.split(",")]
        return [str(v).strip() for v in (value or []) if str(v).strip()], None
    if spec.kind == "checkbox":
        return bool(value), None
    if spec.kind in {"text", "dropdown"} and value is None:
        return "", None
    return value, None


def values_to_config(values: dict[str, Any]) -> RunConfig:
    """The validated config for form values {path: value}; missing paths keep the recipe default.

    Raises ConfigError with one line per problem, each starting with the field's path.
    """
    problems: list[str] = []
    data: dict[str, Any] = RunConfig().model_dump(mode="json")
    for path, value in values.items():
        spec = _SPECS.get(path)
        if spec is None:
            problems.append(f"{path}: unknown setting")
            continue
        coerced, problem = _coerce(spec, value)
        if problem:
            problems.append(f"{path}: {problem}")
        section, _, key = path.partition(".")
        if key:
            data[section][key] = coerced
        else:
            data[section] = coerced
    try:
        config = parse_config(data)
    except ConfigError as exc:
        raise ConfigError(problems + exc.errors) from None
    if problems:
        raise ConfigError(problems)
    return config


def errors_by_field(errors: list[str]) -> dict[str, list[str]]:
    """Group ConfigError lines by the field they name ('' for lines that name no form field)."""
    out: dict[str, list[str]] = {}
    for line in errors:
        head, sep, rest = line.partition(": ")
        path = head if sep and head in _SPECS else ""
        out.setdefault(path, []).append(rest if path else line)
    return out


def _cli_value(value: Any) -> str:
    # The CLI reads each --set value with yaml.safe_load: plain text only where YAML reads it back unchanged.
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value and "\n" not in value:
                return value
        except yaml.YAMLError:
            pass
    if isinstance(value, float):
        text = repr(value)  # YAML 1.1 reads "2e-05" as text: the mantissa needs a dot
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    return json.dumps(value)  # JSON is YAML: lists, numbers, booleans and quoted strings read back exactly


def cli_overrides(config: RunConfig, base: RunConfig | None = None) -> list[str]:
    """``--set path=value`` pairs that turn ``base`` (default: the reference recipe) into ``config``."""
    before = config_to_values(base or RunConfig())
    after = config_to_values(config)
    return [f"{p}={_cli_value(v)}" for p, v in after.items() if before[p] != v]


def cli_command(config: RunConfig) -> str:
    """The shell commands that queue the same run: with the saved YAML file, or as overrides of the recipe."""
    sets = " \\\n    ".join(f"--set {shlex.quote(pair)}" for pair in cli_overrides(config))
    return ("# with the YAML file (Save config below):\nmedcot enqueue config.yaml\n\n"
            "# or, without a file, as changes to the reference recipe:\n"
            + (f"medcot enqueue \\\n    {sets}" if sets else "medcot enqueue"))
