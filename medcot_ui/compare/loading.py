"""Loading the one base model a process compares on, and attaching runs' LoRA adapters to it by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoadedModel:
    model_id: str
    model: Any  # a PeftModel once an adapter is attached, else the plain base model
    tokenizer: Any
    device: str
    quantised: bool
    adapters: list[str] = field(default_factory=list)  # least recently used first
    compiled_for: str | None = None  # the adapter the compiled decode step was captured with


def load_model(model_id: str, quantised: bool) -> LoadedModel:
    """The base model (4-bit NF4 when ``quantised``) on GPU 0 when there is one, with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from medcot_ui.training.models import ModelLoadError, device_description, load_tokenizer, resolve_model, torch_dtype

    kwargs: dict[str, Any] = {"dtype": torch_dtype("auto")}
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": 0}
    if quantised:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"])
    try:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(model_id), **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"Could not load the base model '{model_id}': "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    model.eval()
    weights = "4-bit" if quantised else str(kwargs["dtype"]).removeprefix("torch.")
    return LoadedModel(model_id, model, load_tokenizer(model_id), f"{device_description()}, {weights} weights",
                       quantised)


def adapter_name(run_id: int, adapter_dir: Path) -> str:
    """The adapter's name on the base: the file's mtime is part of it, so a retrained run gets its new weights."""
    return f"run-{run_id}-{(adapter_dir / 'adapter_model.safetensors').stat().st_mtime_ns}"


def attach_adapter(loaded: LoadedModel, name: str, adapter_dir: Path, keep: int) -> None:
    """Make ``name`` loaded (most recently used); drop older saves of its run and all but ``keep`` adapters."""
    from peft import PeftModel

    if name in loaded.adapters:
        loaded.adapters.remove(name)
        loaded.adapters.append(name)
        return
    run_prefix = name.rsplit("-", 1)[0] + "-"
    stale = [a for a in loaded.adapters if a.startswith(run_prefix)]  # older saves of this run
    if not loaded.adapters:
        loaded.model = PeftModel.from_pretrained(loaded.model, str(adapter_dir), adapter_name=name,
                                                 is_trainable=False)
    else:
        loaded.model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
    loaded.model.eval()
    loaded.adapters.append(name)
    for old in stale:
        loaded.model.delete_adapter(old)
        loaded.adapters.remove(old)
    while len(loaded.adapters) > keep:
        loaded.model.delete_adapter(loaded.adapters.pop(0))
