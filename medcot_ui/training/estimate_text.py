"""The Train tab's estimate in words a clinician plans with: how long the whole run takes (starting and loading
the model included), how much memory it needs, and which GPU that assumes. The arithmetic behind it (in TFLOP
and GiB) is folded away under *How this is estimated*."""

from __future__ import annotations

import os

from medcot_ui.training.config import RunConfig
from medcot_ui.training.estimate import (GIB, Estimate, backend_for_gpu, calibration, estimate,
                                         whole_run_calibration)
from medcot_ui.training.gpus import GPUS, REFERENCE_GPU, detected_gpu, local_cuda_device
from medcot_ui.training.grpo_estimate import describe_grpo
from medcot_ui.training.model_shape import model_shape
from medcot_ui.units import rough_duration

BACKEND_LABELS = {"unsloth": "Unsloth", "transformers": "transformers + bitsandbytes"}
MEMORY_PARTS = {"frozen weights": "the model itself", "LoRA + grads + optimizer": "what training adds to it",
                "activations": "working memory for the longest batch", "logits + loss": "scoring the next word"}


def gb(gib: float) -> str:
    """GiB as the GB people read on a card's box ('6.9 GB', '350 MB')."""
    n = gib * GIB / 1e9
    return f"{n * 1000:.0f} MB" if n < 1 else f"{n:.1f} GB"


def _whole_run(est: Estimate, steps: int) -> str:
    start = f"{rough_duration(est.startup_s)} to start and load the model"
    if not steps:  # trained by epochs: the step count depends on the data
        return f"{start}, then {rough_duration(est.seconds_per_step)} per step"
    return f"**about {rough_duration(est.run_seconds(steps))}**: {start}, then {steps} steps of " \
           f"{rough_duration(est.seconds_per_step)}"


def _busy_note() -> str:
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores:
        return ""
    # A ratio, not "N x longer": a load of 1.4 per core would read as "up to 1x longer" (no longer at all).
    return f" This machine is busy (load {load:.0f} on {cores} cores): expect it to take up to " \
           f"{min(load / cores, 10):.1f} times as long."


def _cpu_lines(config: RunConfig) -> list[str]:
    est = estimate(config, cpu=True)
    lines = ["**No GPU on this machine**: training runs on the CPU (full precision; 4-bit loading and 8-bit "
             "optimizers are off)."]
    if est is not None:
        lines.append(f"On this CPU the run takes {_whole_run(est, config.training.max_steps)}, and needs "
                     f"{gb(est.total_gib)} of memory." + _busy_note()
                     + (" An 8 B model is impractical on a CPU: use a GPU machine." if est.params > 1e9 else ""))
    return lines


def _which_gpu(gpu: str) -> str:
    local = local_cuda_device()
    if local is not None and detected_gpu() == gpu:
        return f"this machine's GPU, **{local[0]}** ({gb(local[1])})"
    if local is not None:
        return f"**{gpu}**, chosen under *Estimate for GPU* (this machine has a {local[0]})"
    return f"**{gpu}** (no GPU here; choose the one you will train on under *Estimate for GPU*)"


def _gpu_table(config: RunConfig, gpu: str, ests: dict[str, Estimate]) -> list[str]:
    steps, chosen = config.training.max_steps, backend_for_gpu(config.model.backend)
    head = "whole run" if steps else "start + load the model"
    lines = [f"| trained with | GPU memory needed | {head} | per step |", "|---|---|---|---|"]
    for name, est in ests.items():
        fits = f" -- **more than the {gb(GPUS[gpu].memory_gib)} it has**" if not est.fits() else ""
        mark = " (this config)" if name == chosen else ""
        whole = rough_duration(est.run_seconds(steps)) if steps else rough_duration(est.startup_s)
        lines.append(f"| {BACKEND_LABELS[name]}{mark} | {gb(est.total_gib)}{fits} | {whole} | "
                     f"{rough_duration(est.seconds_per_step)} |")
    est = ests[chosen]
    lines += ["", "Where the memory goes: " + ", ".join(f"{MEMORY_PARTS[k]} {gb(v)}"
                                                       for k, v in est.memory_gib.items())
              + ". The GPU's own overhead adds about 0.5-1 GB."]
    if est.download_gb:
        lines.append(f"The first run also downloads the model ({est.download_gb:.0f} GB) from the Hugging Face Hub "
                     "before it starts: minutes to an hour, depending on the connection.")
    return lines


def _how_estimated(basis: list[str]) -> list[str]:
    steps = "; ".join(f"{c['what']}: {c['s/step estimated']} s/step vs {c['s/step measured']} "
                      f"({c['s/step error']:+.0%})" + (f", {c['peak GiB estimated']} GiB vs {c['peak GiB measured']} "
                                                       f"({c['peak error']:+.0%})" if c["peak error"] is not None
                                                       else "") for c in calibration())
    runs = "; ".join(f"{c['what']}: {c['estimated s']} s vs {c['measured s']} s ({c['error']:+.0%})"
                     for c in whole_run_calibration())
    return ["", "<details><summary>How this is estimated</summary>", "", " ".join(basis), "",
            f"Checked against measurements, per step: {steps}. Whole runs: {runs}.", "", "</details>"]


def describe(config: RunConfig, gpu: str | None = None, cuda: bool | None = None) -> str:
    """Markdown: the whole run's time and memory on this machine (or the GPU planned for), and the basis."""
    if cuda is None:
        from medcot_ui.training.models import cuda_available

        cuda = cuda_available()
    if config.training.method == "grpo":  # mostly generation, which the SFT estimate does not model
        return describe_grpo(config, cuda)
    gpu = gpu if gpu in GPUS else (detected_gpu() or REFERENCE_GPU)
    lines = [] if cuda else _cpu_lines(config) + [""]
    ests = {b: estimate(config, gpu=gpu, backend=b) for b in ("unsloth", "transformers")}
    if ests["unsloth"] is None:
        why = model_shape(config.model.base_model)[1]
        return "\n".join(lines + [f"No estimate for `{config.model.base_model}`: {why}. Put a downloaded model "
                                  "folder in Base model to get one."])
    lines.append(("On a GPU" if cuda else "Planning for a GPU") + f": {_which_gpu(gpu)}.")
    if (processes := config.training.num_processes) > 1:
        lines.append(f"**{processes} GPUs** (data parallel, one training process each): memory is per GPU, "
                     "throughput for all of them together.")
    lines += _gpu_table(config, gpu, ests)
    basis = ests[backend_for_gpu(config.model.backend)].basis
    if not cuda and (on_cpu := estimate(config, cpu=True)) is not None:
        basis = basis + [f"On this CPU: {line}" for line in on_cpu.basis[-2:]]  # its start and time per step
    return "\n".join(lines + _how_estimated(basis))
