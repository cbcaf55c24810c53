"""The command line the worker starts a run's training with: one Python process, or one process per GPU
(``training.num_processes``) under PyTorch's launcher for data-parallel training, or under Accelerate's with the
FSDP configuration named by ``MEDCOT_ACCELERATE_CONFIG`` for models that do not fit one GPU (docs/SCALE.md).

The Trainer reads the rank variables either launcher sets and wraps the model for them (DistributedDataParallel
over NCCL on GPUs and gloo on the CPU, or FSDP).
"""

from __future__ import annotations

import os
import sys

from medcot_ui.store import Run


def training_command(run: Run) -> list[str]:
    """argv of the training process for the attempt that just claimed ``run`` (its layout comes from the stored
    config, so a resumed run gets the same one)."""
    processes = run.run_config().training.num_processes
    train = ["-m", "jobs.train", str(run.id), f"--attempt={run.attempt}"]
    if processes == 1:
        return [sys.executable, *train]
    if accelerate_config := os.environ.get("MEDCOT_ACCELERATE_CONFIG"):
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config,
                "--num_processes", str(processes), *train]
    # --standalone: a rendezvous on a free local port of its own, so several workers on one machine never meet.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *train]


def evaluation_command(run: Run) -> list[str]:
    """argv of the evaluation process (``jobs.evaluate``) for the attempt that just claimed the evaluation job."""
    return [sys.executable, "-m", "jobs.evaluate", str(run.id), f"--attempt={run.attempt}"]
