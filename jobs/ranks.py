"""A training process's place in a data-parallel run.

torchrun starts one process per GPU (or several on the CPU, over gloo) and tells each its ``RANK``, ``LOCAL_RANK``
and ``WORLD_SIZE``. Only rank 0 touches the run store and saves; what it decides from the store (stop: cancelled)
is broadcast, because a rank that stops alone leaves the others waiting in their next all-reduce forever.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes to the run store and saves the adapter."""
    return rank() == 0


def _group() -> Any:
    """torch.distributed when this process is one of several and the Trainer has set the group up, else None."""
    if world_size() == 1:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _tensor(value: float) -> Any:
    import torch

    dist = _group()
    device = f"cuda:{local_rank()}" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces CUDA tensors only
    return torch.tensor([value], dtype=torch.float64, device=device)


def from_main(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (call it on all ranks at the same point)."""
    dist = _group()
    if dist is None:
        return flag
    t = _tensor(float(flag))
    dist.broadcast(t, src=0)
    return bool(t.item())


def summed(value: float) -> float:
    """``value`` added up over all ranks (e.g. tokens seen), the same on every rank."""
    dist = _group()
    if dist is None:
        return value
    t = _tensor(value)
    dist.all_reduce(t)
    return float(t.item())


def _parent_of(pid: int) -> int:
    try:
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its closing bracket.
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 1


def worker_pid() -> int:
    """The pid of the process that started this training: the worker, or under torchrun the agent's parent."""
    parent = os.getppid()
    return _parent_of(parent) if os.environ.get("TORCHELASTIC_RUN_ID") else parent


def save_adapter(trainer: Any, model: Any, tokenizer: Any, folder: Path) -> None:
    """Save the LoRA adapter and tokenizer; every rank calls it. Under FSDP the adapter lives in shards on all ranks
    and gathering it is collective; otherwise rank 0 holds all of it."""
    if getattr(trainer, "is_fsdp_enabled", False):
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        trainer.save_model(str(folder))  # writes on rank 0 only, adapter and tokenizer
    elif is_main():
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def layout_problem() -> str | None:
    """Why this machine cannot hold the run's layout (more processes than visible GPUs), naming the setting."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and world_size() > gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return (f"training.num_processes: {world_size()} processes, one per GPU, but this worker sees {gpus} GPU"
                f"{'s' if gpus > 1 else ''}" + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible else "")
                + ": lower it, or run the worker on a machine with more GPUs")
    return None


def load_checkpoints_on_cpu_ranks() -> None:
    """Let a data-parallel run on the CPU resume. The Trainer loads the optimizer state of a checkpoint onto the
    process's device, which on the CPU is "cpu:RANK"; torch.load knows no such place (it knows "cpu"). The tensors
    are on the CPU already, so that place needs nothing done."""
    import torch

    if world_size() > 1 and not torch.cuda.is_available():
        torch.serialization.register_package(
            100, lambda _obj: None, lambda obj, location: obj if location.startswith("cpu:") else None)
