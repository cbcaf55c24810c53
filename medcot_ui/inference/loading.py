"""Loading the one base model a process compares on, and putting runs' LoRA adapters on it by name.

The base stays a plain transformers model; the active adapter is injected with a scale per batch row
(``row_lora``). Recently used adapters are kept on the CPU by name, so switching back costs one in-place copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcot_ui.inference.fast_decode import Decoder
from medcot_ui.inference.row_lora import AdapterWeights, RowLoRA, read_adapter


@dataclass
class LoadedModel:
    model_id: str
    model: Any  # the plain base model, with the active adapter's layers injected once one is attached
    tokenizer: Any
    device: str
    quantised: bool
    adapters: dict[str, AdapterWeights] = field(default_factory=dict)  # least recently used first
    lora: RowLoRA | None = None
    active: str | None = None  # the adapter whose weights are in ``lora`` now
    decoder: Decoder | None = None  # static caches and the compiled decode step (set by the engine)


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


def attach_adapter(loaded: LoadedModel, name: str, adapter_dir: Path, keep: int) -> bool:
    """Make ``name`` the active adapter (most recently used); drop older saves of its run and all but ``keep``.

    Returns True when the injected layers were replaced (another rank or set of modules): graphs compiled for
    the old layers must then be dropped. An adapter of the same shape is copied in place instead.
    """
    if name in loaded.adapters:
        loaded.adapters[name] = loaded.adapters.pop(name)
    else:
        run_prefix = name.rsplit("-", 1)[0] + "-"
        for old in [a for a in loaded.adapters if a.startswith(run_prefix)]:  # older saves of this run
            del loaded.adapters[old]
        loaded.adapters[name] = read_adapter(adapter_dir)
        while len(loaded.adapters) > keep:
            del loaded.adapters[next(iter(loaded.adapters))]
    weights = loaded.adapters[name]
    replaced = False
    if loaded.lora is not None and not loaded.lora.fits(weights):
        loaded.lora.detach()
        loaded.lora, replaced = None, True
    if loaded.lora is None:
        loaded.lora = RowLoRA(loaded.model, weights)
    elif loaded.active != name:
        loaded.lora.load(weights)
    loaded.active = name
    return replaced
