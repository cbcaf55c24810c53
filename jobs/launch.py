"""The command line the worker starts a job with: one Python process (its kind's module), or one process per GPU
(a training run's ``training.num_processes``) under PyTorch's launcher for data-parallel training, or under
Accelerate's with the FSDP configuration named by ``MEDCOT_ACCELERATE_CONFIG`` for models that do not fit one GPU (docs/SCALE.md).

The Trainer reads the rank variables either launcher sets and wraps the model for them (DistributedDataParallel
over NCCL on GPUs and gloo on the CPU, or FSDP).
"""

from __future__ import annotations

import os
import sys

from medcot_ui.jobkinds import kind_of
from medcot_ui.store import Run


def job_command(run: Run) -> list[str]:
    """argv of the process for the attempt that just claimed ``run``: its kind's module, under a launcher when its
    payload asks for several processes (read from the stored payload, so a resumed run gets the same layout)."""
    kind = kind_of(run.kind)
    processes = kind.processes(kind.from_json(run.config_json))
    job = ["-m", kind.module, str(run.id), f"--attempt={run.attempt}"]
    if processes == 1:
        return [sys.executable, *job]
    if accelerate_config := os.environ.get("MEDCOT_ACCELERATE_CONFIG"):
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config,
                "--num_processes", str(processes), *job]
    # --standalone: a rendezvous on a free local port of its own, so several workers on one machine never meet.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *job]
