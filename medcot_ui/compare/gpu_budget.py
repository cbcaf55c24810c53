"""The GPU memory a comparison needs, and waiting politely while a training run holds the GPU.

The need is counted from the same model shape the Train estimate uses (``training.estimate``): the KV cache of
both rows, a workspace, and the weights when they are not loaded yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from medcot_ui.compare.errors import CompareError
from medcot_ui.compare.generation import GenerationSettings
from medcot_ui.training.config import RunConfig
from medcot_ui.training.model_shape import ModelShape, model_shape, shape_from_config

GiB = 2**30
NF4_BYTES_PER_PARAM = 0.53  # 4-bit weights, double-quantised scales, and room for bitsandbytes' buffers


@dataclass(frozen=True)
class GpuMemory:
    free: int
    total: int


def cuda_memory() -> GpuMemory | None:
    """Free and total memory of GPU 0 as the driver sees it (all processes), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(0)
    return GpuMemory(free, total)


def running_training_runs() -> list[Any]:
    """Jobs running now, training runs and evaluations alike (from the database: they live in other processes)."""
    from sqlmodel import select

    from medcot_ui.store import Run, RunStatus, read_session

    with read_session() as s:  # not list_runs(): it leaves evaluation jobs out, and they use the GPU too
        return list(s.exec(select(Run).where(Run.status == RunStatus.running, Run.deleted_at.is_(None))))


def safety_margin(total: int) -> int:
    """Memory left untouched while training runs: its usage moves between steps (eval, checkpoints, long rows)."""
    return max(2 * GiB, total // 10)


def comparison_shape(base_model: str, loaded_config: Any | None = None) -> ModelShape:
    """The base model's shape: the loaded model's own config, else the one the Train estimate reads."""
    shape = shape_from_config(loaded_config) if loaded_config is not None else model_shape(base_model)[0]
    if shape is None:  # not on this machine yet and not a known shape: its config.json (the load fetches it anyway)
        from transformers import AutoConfig

        from medcot_ui.training.models import resolve_model

        shape = shape_from_config(AutoConfig.from_pretrained(resolve_model(base_model)))
    if shape is None:
        raise CompareError(f"base model {base_model}: its config.json does not give the model's shape")
    return shape


def comparison_bytes(shape: ModelShape, tokens: int, rows: int = 2, bytes_per_value: int = 2,
                     weights_4bit: bool = False, include_weights: bool = True) -> int:
    """GPU bytes a comparison needs: KV cache for ``rows`` x ``tokens``, workspace, and the weights if not loaded."""
    kv = 2 * shape.layers * shape.kv_heads * shape.hd * bytes_per_value * rows * tokens
    # logits of the last position in fp32 and the activations of one step, with room for the allocator
    workspace = rows * shape.vocab * 4 * 4 + 512 * 2**20
    need = kv + workspace
    if include_weights:
        linear = shape.linear_params * (NF4_BYTES_PER_PARAM if weights_4bit else bytes_per_value)
        need += int(linear) + (shape.embedding_params + shape.other_params) * bytes_per_value
    return need


def comparison_need(config: RunConfig, settings: GenerationSettings, loaded_config: Any | None) -> int:
    """Bytes this comparison needs: with the weights unless ``loaded_config`` says the base is loaded already."""
    tokens = settings.max_new_tokens + config.model.max_seq_length // 2  # prompt: well under a training row
    return comparison_bytes(comparison_shape(config.model.base_model, loaded_config), tokens,
                            weights_4bit=config.model.load_in_4bit, include_weights=loaded_config is None)


def on_gpu(run: Any) -> bool:
    # A run records its device once its model is loaded; before that, assume it will take the GPU.
    return not (run.device or "").startswith("CPU")


@dataclass
class GpuBudget:
    """The shared GPU as a comparison sees it: free memory, and training runs that must not run out of it."""

    memory_probe: Callable[[], GpuMemory | None] = cuda_memory
    training_probe: Callable[[], list[Any]] = running_training_runs
    wait_s: float = 180.0
    poll_s: float = 2.0

    def training_on_gpu(self) -> list[Any]:
        return [r for r in self.training_probe() if on_gpu(r)]

    def room_for_16bit(self, base_model: str) -> bool:
        """Whether 16-bit weights and the longest comparison fit now, beside a margin, with no training run."""
        memory = self.memory_probe()
        if memory is None or self.training_on_gpu():
            return False
        longest = int(GenerationSettings.bounds("max_new_tokens")[1])
        need = comparison_bytes(comparison_shape(base_model), longest, weights_4bit=False)
        return memory.free >= need + safety_margin(memory.total)

    def wait_for_room(self, need: Callable[[], int], stop: threading.Event) -> Iterator[str]:
        """Yield 'why we wait' messages until the GPU has ``need()`` bytes free (or raise after a while)."""
        if self.memory_probe() is None:
            return  # CPU: nothing to protect (a CPU training run only makes both slower)
        deadline = time.monotonic() + self.wait_s
        needed = need()  # fixed while we wait: the loaded model cannot change meanwhile
        while not stop.is_set():
            training = self.training_on_gpu()
            memory = self.memory_probe()
            if memory is None:
                return
            margin = safety_margin(memory.total) if training else 0
            if memory.free >= needed + margin:
                return
            who = (f"training run {', '.join(str(r.id) for r in training)} is using the GPU"
                   if training else "the GPU is busy")
            reason = (f"{who}: {memory.free / GiB:.1f} GiB free of {memory.total / GiB:.0f} GiB, and this "
                      f"comparison needs about {needed / GiB:.1f} GiB" +
                      (f" plus {margin / GiB:.0f} GiB left for the training run so it never runs out of memory"
                       if training else ""))
            if time.monotonic() >= deadline:
                raise CompareError(f"Not started: {reason}. Try again when the training run has finished, lower "
                                   "'Max new tokens', or train in 4-bit.")
            yield f"Waiting: {reason}. It starts by itself as soon as memory allows (Stop cancels)."
            stop.wait(self.poll_s)
