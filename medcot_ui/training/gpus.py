"""The GPUs an estimate can plan for (peak speed, memory bandwidth, usable memory), and this machine's own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    tflops: float      # dense bf16 (fp16 on T4) tensor-core peak
    bandwidth: float   # memory bandwidth, TB/s
    memory_gib: float  # what the card offers to PyTorch, roughly


GPUS: dict[str, Gpu] = {g.name: g for g in (
    Gpu("H200 (141 GB)", 989.4, 4.8, 139.8), Gpu("H100 SXM (80 GB)", 989.4, 3.35, 79.2),
    Gpu("H100 PCIe (80 GB)", 756.0, 2.0, 79.2), Gpu("A100 (80 GB)", 312.0, 2.04, 79.2),
    Gpu("A100 (40 GB)", 312.0, 1.56, 39.4), Gpu("L40S (48 GB)", 362.0, 0.864, 44.4),
    Gpu("RTX 4090 (24 GB)", 165.2, 1.008, 23.6), Gpu("A10 (24 GB)", 125.0, 0.6, 22.1),
    Gpu("L4 (24 GB)", 121.0, 0.3, 22.0), Gpu("T4 (16 GB)", 65.0, 0.32, 14.6))}
REFERENCE_GPU = "H200 (141 GB)"


# (what the CUDA device name contains, the GPUS names it may be), most specific first: "A100" before "A10".
_FAMILIES = (("H200", "H200"), ("H100 PCIe", "H100 PCIe"), ("H100", "H100 SXM"), ("A100", "A100"), ("L40S", "L40S"),
             ("4090", "RTX 4090"), ("A10", "A10 "), ("L4", "L4 "), ("T4", "T4 "))


def local_cuda_device() -> tuple[str, float] | None:
    """This machine's first CUDA device: (its name, its memory in GiB), or None without one."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory / 2**30
    except Exception:  # noqa: BLE001 - no torch or a broken driver: plan as if no GPU
        return None


def detected_gpu() -> str | None:
    """The GPUS entry for this machine's CUDA device (the size closest to its memory), if it is in the table."""
    device = local_cuda_device()
    if device is None:
        return None
    name, gib = device
    for key, prefix in _FAMILIES:
        if key in name:
            return min((g for g in GPUS.values() if g.name.startswith(prefix)),
                       key=lambda g: abs(g.memory_gib - gib)).name
    return None
