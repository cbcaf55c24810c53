"""On a CUDA GPU: the reference config on a random-init model of the real 8B shape, through the real queue,
worker and training process, with the Unsloth backend and with transformers + bitsandbytes. Skipped without CUDA.

Set MEDCOT_GPU_WORK to a folder holding `model/` and `rows.jsonl` from `bench/make_random_8b.py` to reuse one
(building it takes about 15 s on an H100/H200).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, cli, wait_for
from medcot_ui.store import get_run, run_events, run_metrics

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(240)]  # fails a hung GPU test inside one device call


@pytest.fixture(scope="module")
def random_8b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = Path(os.environ.get("MEDCOT_GPU_WORK") or tmp_path_factory.mktemp("gpu"))
    if not (work / "model" / "config.json").exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_random_8b.py"), str(work)], check=True)
    return work


def queue_recipe_run(random_8b: Path, backend: str, config_file: Path, **overrides: object) -> None:
    """The recipe on the random 8B (64 rows, 6 steps) for ``backend``, queued through the CLI as a user would."""
    if backend == "unsloth":
        pytest.importorskip("unsloth")
    pytest.importorskip("bitsandbytes")
    from medcot_ui.training.presets import recipe

    config = recipe().with_overrides({
        "model.base_model": str(random_8b / "model"), "model.backend": backend, "data.source": "file",
        "data.file_path": str(random_8b / "rows.jsonl"), "data.split": "train[0:64]",
        "training.max_steps": 6, "training.logging_steps": 2, "training.save_steps": 6, **overrides})
    config_file.write_text(config.to_yaml())
    cli("enqueue", str(config_file))


@pytest.mark.parametrize("backend", ["unsloth", "transformers"])
def test_the_reference_recipe_trains_an_8b_shaped_model_in_4bit_through_the_queue(
        backend: str, random_8b: Path, home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    queue_recipe_run(random_8b, backend, tmp_path / "gpu.yaml")
    processes.worker()
    wait_for(lambda: get_run(1).status in {"succeeded", "failed"}, timeout=220, interval=1, what="the GPU run")
    run = get_run(1)
    assert run.status == "succeeded", run.error
    metrics = run_metrics(1)
    assert [m.step for m in metrics] == [2, 4, 6]
    assert all(m.gpu_mem_gb and m.gpu_mem_gb > 3 for m in metrics), "4-bit 8B weights alone are ~5 GB"
    assert all(m.tokens_per_s for m in metrics[1:])
    assert f"with the {backend} backend" in " ".join(e.message for e in run_events(1))

    from peft import PeftConfig
    from safetensors.torch import load_file

    adapter = Path(run.output_dir) / "adapter"
    assert PeftConfig.from_pretrained(adapter).r == 16
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_a = [t for k, t in weights.items() if "lora_A" in k]
    assert len(lora_a) == 32 * 7 and all(t.shape[0] == 16 for t in lora_a)


@pytest.mark.parametrize("backend", ["unsloth", "transformers"])
def test_the_recipe_trains_across_two_gpus_with_one_process_each_through_the_queue(
        backend: str, random_8b: Path, home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs")
    queue_recipe_run(random_8b, backend, tmp_path / "two-gpus.yaml",
                     **{"training.num_processes": 2, "training.gradient_accumulation_steps": 2})
    processes.worker()
    wait_for(lambda: get_run(1).status in {"succeeded", "failed"}, timeout=220, interval=1, what="the 2-GPU run")
    run = get_run(1)
    assert run.status == "succeeded", run.error
    assert [m.step for m in run_metrics(1)] == [2, 4, 6], "one metrics row per logging step, from rank 0 only"
    events = " ".join(e.message for e in run_events(1))
    assert f"with the {backend} backend" in events and "2 data-parallel processes" in events
    assert (Path(run.output_dir) / "adapter" / "adapter_model.safetensors").exists()
