"""A LoRA adapter applied with a scale per batch row, so one batch holds the base model and the tuned model.

Compare decodes the base pane (row 0) and the tuned pane (row 1) in one batch. Every target linear layer
computes ``base(x) + B(A(x)) * scaling * row_scale[row]`` with ``row_scale = [0, 1]``: the same work as a plain
single-adapter forward, laid out so a compiled decode step launches no more kernels than the base model's.
PEFT's mixed-adapter path (``adapter_names``) instead splits the batch per adapter name and scatters the parts
back in every layer, which made the two-row batch cost about twice one stream.

The adapter's matrices live in fixed tensors that a compiled, CUDA-graph-captured decode step reads by
address: switching to another run's adapter of the same shape copies into them in place, so the captured
graphs stay valid and apply the new weights (no recompilation, no stale adapter).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medcot_ui.errors import MedcotError

PEFT_PREFIX = "base_model.model."  # PEFT saves keys as base_model.model.<module path>.lora_A.weight


class AdapterError(MedcotError, ValueError):
    """An adapter this module cannot apply; the message names the setting."""


@dataclass(frozen=True)
class AdapterWeights:
    """One saved LoRA adapter: per module path its (A, B) matrices, and the scale alpha / r (or / sqrt(r))."""

    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    scaling: float

    @property
    def shapes(self) -> dict[str, tuple[torch.Size, torch.Size]]:
        return {name: (a.shape, b.shape) for name, (a, b) in self.pairs.items()}


def read_adapter(adapter_dir: Path) -> AdapterWeights:
    """Read a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) onto the CPU."""
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    for key, allowed in (("peft_type", ("LORA",)), ("use_dora", (False, None)), ("bias", ("none", None)),
                         ("modules_to_save", (None, [])), ("rank_pattern", ({}, None)),
                         ("alpha_pattern", ({}, None))):
        if config.get(key) not in allowed:
            raise AdapterError(f"adapter_config.json: {key} = {config.get(key)!r} is not supported by Compare's "
                               f"row-batched LoRA (supported: {', '.join(map(repr, allowed))})")
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, a in tensors.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix(PEFT_PREFIX)
        b_key = key.replace(".lora_A.", ".lora_B.")
        if b_key not in tensors:
            raise AdapterError(f"adapter_model.safetensors: {key} has no matching lora_B")
        pairs[module] = (a, tensors[b_key])
    if not pairs:
        raise AdapterError(f"adapter_model.safetensors in {adapter_dir}: no LoRA matrices found")
    return AdapterWeights(pairs, scaling)


class RowLoRALinear(nn.Module):
    """``base(x) + B(A(x)) * row_scale[:batch]``: the adapter on in rows whose scale is 1, off where it is 0.

    For a plain bias-free ``nn.Linear`` (every bf16/fp16/fp32 base) A's rows are stacked under the base weight in
    one tensor, ``[W; A]``, and the base weight becomes a view of its top rows: one matmul then yields the base
    output and A(x) together. A decode step of an 8B model runs 224 adapted layers, and at batch 2 each extra
    skinny matmul costs about as much as launching it; with B's product fused into the add (``forward``), the
    adapter adds no kernel launch of its own to a compiled decode step.
    """

    def __init__(self, base: nn.Module, a: torch.Tensor, b: torch.Tensor, row_scale: torch.Tensor):
        super().__init__()
        self.base = base
        self.stacked = type(base) is nn.Linear and base.bias is None and base.weight.dtype == a.dtype
        if self.stacked:
            self.out_features = base.out_features
            weights = torch.cat([base.weight.detach(), a])
            base.weight.data = weights[: self.out_features]  # the base's own weight, now a view: no copy kept
            self.register_buffer("weights", weights, persistent=False)
            a = weights[self.out_features:]
        self.register_buffer("lora_a", a, persistent=False)
        self.register_buffer("lora_b", b, persistent=False)
        # Shared by every layer: (rows, 1, 1) with the scaling folded in; a buffer, so compiled graphs read it.
        self.register_buffer("row_scale", row_scale, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stacked:
            both = nn.functional.linear(x, self.weights)
            out, down = both[..., : self.out_features], both[..., self.out_features:]
        else:
            out, down = self.base(x), x.to(self.lora_a.dtype) @ self.lora_a.t()
        if down.shape[-2] == 1 and torch.compiler.is_compiling():
            # A compiled decode step: B as a rank-wide sum, which the compiler fuses with the add below into one
            # kernel (as a matmul it stays a separate cuBLAS launch per layer, 224 per step for an 8B model).
            # Eager, the matmul is the single kernel.
            delta = (down.unsqueeze(-2) * self.lora_b).sum(-1)
        else:
            delta = down @ self.lora_b.t()
        return out + (delta * self.row_scale[: x.shape[0]]).to(x.dtype)

    def static_tensors(self) -> list[torch.Tensor]:
        """The tensors a captured graph reads by address (and ``load`` writes in place)."""
        return [self.weights if self.stacked else self.lora_a, self.lora_b]


class RowLoRA:
    """One adapter injected into a plain (non-PEFT) transformers model, with a scale per batch row."""

    def __init__(self, model: nn.Module, weights: AdapterWeights, rows: int = 2):
        self.model = model
        self.rows = rows
        self.scaling = weights.scaling
        self.shapes = weights.shapes
        params = next(model.parameters())
        # LoRA math in the model's compute dtype (bf16/fp16/fp32); 4-bit bases compute in their compute dtype too.
        self.dtype = params.dtype if params.dtype.is_floating_point else torch.bfloat16
        self.device = params.device
        self.row_scale = torch.zeros(rows, 1, 1, dtype=self.dtype, device=self.device)
        self.layers: dict[str, RowLoRALinear] = {}
        for name, (a, b) in weights.pairs.items():
            parent, child = _parent(model, name)
            base = getattr(parent, child)
            layer = RowLoRALinear(base, a.to(self.device, self.dtype), b.to(self.device, self.dtype), self.row_scale)
            setattr(parent, child, layer)
            self.layers[name] = layer
        self._mark_static()

    def _mark_static(self) -> None:
        # The compiled decode step must read these by address, so an in-place load() reaches captured graphs.
        for tensor in [self.row_scale, *(t for layer in self.layers.values() for t in layer.static_tensors())]:
            torch._dynamo.mark_static_address(tensor)

    def fits(self, weights: AdapterWeights) -> bool:
        """Whether ``weights`` has the same modules and shapes, so ``load`` can copy it in place."""
        return weights.shapes == self.shapes

    def load(self, weights: AdapterWeights) -> None:
        """Copy another adapter of the same shape into the injected tensors (graphs captured earlier stay valid)."""
        if not self.fits(weights):
            raise AdapterError("the adapter's modules or ranks differ from the injected one: detach and inject it")
        self.scaling = weights.scaling
        with torch.no_grad():
            for name, (a, b) in weights.pairs.items():
                self.layers[name].lora_a.copy_(a)
                self.layers[name].lora_b.copy_(b)

    def set_rows(self, on: Sequence[bool]) -> None:
        """Which batch rows get the adapter (row i of a smaller batch reads entry i)."""
        if len(on) > self.rows:
            raise ValueError(f"rows: {len(on)} given, the injected adapter has room for {self.rows}")
        values = [self.scaling if flag else 0.0 for flag in on] + [0.0] * (self.rows - len(on))
        with torch.no_grad():
            self.row_scale.copy_(torch.tensor(values, dtype=self.dtype).view(self.rows, 1, 1))

    def detach(self) -> None:
        """Put the original layers back: the model is the plain base again."""
        for name, layer in self.layers.items():
            parent, child = _parent(self.model, name)
            setattr(parent, child, layer.base)
        self.layers = {}


def merge_into(model: nn.Module, weights: AdapterWeights) -> None:
    """Add the adapter to the base weights in place (W += scaling * B A): afterwards the plain model is the tuned
    model, at the base model's speed. Not undone (16-bit rounding would not give the base back): the evaluation
    process answers the base side first. Only 16/32-bit plain ``nn.Linear`` layers can take it."""
    with torch.no_grad():
        for name, (a, b) in weights.pairs.items():
            parent, child = _parent(model, name)
            layer = getattr(parent, child)
            if type(layer) is not nn.Linear or not layer.weight.dtype.is_floating_point:
                raise AdapterError(f"adapter module {name!r}: a {type(layer).__name__} cannot take a merged adapter "
                                   "(4-bit weights keep the adapter per row)")
            delta = weights.scaling * (b.to(layer.weight.device, torch.float32) @ a.to(layer.weight.device,
                                                                                           torch.float32))
            layer.weight.copy_((layer.weight.float() + delta).to(layer.weight.dtype))


def _parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, child = path.rpartition(".")
    try:
        parent = model.get_submodule(parent_path) if parent_path else model
        getattr(parent, child)
    except AttributeError:
        raise AdapterError(f"adapter module {path!r} is not in the base model: was it trained on another base?"
                           ) from None
    return parent, child


def inject(model: nn.Module, adapter_dir: Path, rows: int = 2) -> RowLoRA:
    """Inject the adapter of ``adapter_dir`` into ``model`` with room for ``rows`` batch rows (all off)."""
    return RowLoRA(model, read_adapter(adapter_dir), rows)

