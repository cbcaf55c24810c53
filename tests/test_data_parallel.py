"""One run across several processes: the worker starts torchrun, each process trains on its share of every step's
rows (DDP over gloo on this CPU, NCCL on GPUs), and only rank 0 writes to the run store and saves. The same global
batch gives the same training as one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, cli, demo_config_file, wait_for
from jobs.launch import job_command
from medcot_ui.runs.detail import run_detail
from medcot_ui.store import ADAPTER_FOLDER, Run, get_run, list_runs, run_events, run_metrics, write_session
from medcot_ui.training.config import RunConfig
from medcot_ui.training.presets import quick_demo

STEPS = 6
# Four rows per optimizer step either way: one process with two micro-batches of two, or two processes with one
# batch of two each. No dropout, so nothing random differs between the layouts but the order of additions.
SAME_GLOBAL_BATCH = {"training.max_steps": STEPS, "training.save_steps": STEPS, "training.logging_steps": 1,
                     "training.per_device_train_batch_size": 2, "lora.dropout": 0.0, "data.eval_size": 0,
                     "training.learning_rate": 1e-2, "training.warmup_steps": 0}


def lora_b_moved(adapter: Path) -> bool:
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return all(t.abs().max() > 0 for name, t in weights.items() if "lora_B" in name)


def train_with_worker(tmp_path: Path, processes, name: str, **layout: int) -> int:  # noqa: ANN001
    config = demo_config_file(tmp_path / f"{name}.yaml", name=name, **SAME_GLOBAL_BATCH, **layout)
    run_id = int(cli("enqueue", str(config)).stdout.split("queued run ")[1].split()[0])
    worker = processes.worker("--exit-when-idle", "--max-runs=1")
    worker.wait(timeout=280)
    run = get_run(run_id)
    assert run.status == "succeeded", (run.error, processes.output(worker)[-3000:])
    return run_id


def test_two_processes_train_the_same_steps_and_losses_as_one_process_with_the_same_global_batch(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    single = train_with_worker(tmp_path, processes, "one-process", **{"training.gradient_accumulation_steps": 2})
    parallel = train_with_worker(tmp_path, processes, "two-processes", **{"training.num_processes": 2})

    one, two = run_metrics(single), run_metrics(parallel)
    assert [m.step for m in two] == [m.step for m in one] == list(range(1, STEPS + 1)), "one row per step, once"
    for a, b in zip(one, two):
        assert abs(a.loss - b.loss) <= 1e-3 * max(1.0, abs(a.loss)), (a.step, a.loss, b.loss)
    for run_id in (single, parallel):  # LoRA's B starts at zero: a non-zero B means the optimizer stepped
        assert lora_b_moved(Path(get_run(run_id).output_dir) / ADAPTER_FOLDER), run_id
    messages = [e.message for e in run_events(parallel)]
    assert any("2 data-parallel processes" in m for m in messages), messages
    assert sum(m.startswith("model loaded") for m in messages) == 1, "only rank 0 writes events"
    assert "2 processes (data parallel" in run_detail(parallel, with_charts=False).header, "the Runs tab says so"
    out = Path(get_run(parallel).output_dir)
    assert (out / "adapter" / "adapter_config.json").exists()
    assert json.loads((out / "summary.json").read_text())["steps"] == STEPS


def test_a_cancel_stops_every_process_at_the_same_step_and_the_run_resumes_with_the_same_layout(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    config = demo_config_file(tmp_path / "long.yaml", **{"training.num_processes": 2, "training.max_steps": 2000,
                                                        "training.logging_steps": 5, "data.eval_size": 0})
    run_id = int(cli("enqueue", str(config)).stdout.split("queued run ")[1].split()[0])
    processes.worker()
    wait_for(lambda: (get_run(run_id).last_step or 0) >= 6, timeout=120, interval=0.05, what="step 6")
    cli("cancel", str(run_id))
    # Well within the worker's grace period: had only rank 0 stopped, rank 1 would wait in its all-reduce until
    # the worker killed them both.
    wait_for(lambda: get_run(run_id).status != "running", timeout=60, what="the run to stop")
    run = get_run(run_id)
    assert (run.status, run.error) == ("cancelled", "cancelled by the user; the adapter at the last step was saved")
    assert (Path(run.output_dir) / f"checkpoint-{run.last_step}").exists()

    stopped_at = run.last_step
    with write_session() as s:  # resume for a short finish: the layout, not the length, is under test
        row = s.get(Run, run_id)
        row.config_json = RunConfig.from_json(row.config_json).with_overrides(
            {"training.max_steps": stopped_at + 4}).to_json()
    cli("resume", str(run_id))
    wait_for(lambda: get_run(run_id).status not in {"queued", "running"}, timeout=180, what="the resumed run")
    run = get_run(run_id)
    assert run.status == "succeeded" and run.attempt == 2, run.error
    messages = [e.message for e in run_events(run_id)]
    assert sum("2 data-parallel processes" in m for m in messages) == 2, "both attempts ran two processes"
    assert any(m.startswith(f"resuming from checkpoint-{stopped_at}") for m in messages), messages


def test_the_worker_starts_one_process_per_gpu_the_run_config_asks_for_with_torchrun_or_fsdp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    one = Run(id=7, attempt=2, config_json=quick_demo().to_json())
    four = Run(id=7, attempt=2, config_json=quick_demo().with_overrides({"training.num_processes": 4}).to_json())
    train = ["-m", "jobs.train", "7", "--attempt=2"]
    assert job_command(one)[1:] == train
    command = job_command(four)
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=4" in command
    assert command[-4:] == train
    fsdp = ROOT / "configs" / "accelerate" / "fsdp_qlora.yaml"
    monkeypatch.setenv("MEDCOT_ACCELERATE_CONFIG", str(fsdp))
    command = job_command(four)
    assert command[1:3] == ["-m", "accelerate.commands.launch"] and command[-4:] == train
    assert command[command.index("--config_file") + 1] == str(fsdp)
    assert command[command.index("--num_processes") + 1] == "4"
    assert yaml.safe_load(fsdp.read_text())["distributed_type"] == "FSDP"
    assert job_command(one)[1:] == train, "one process needs no launcher"


def test_training_several_processes_directly_from_the_cli_is_refused_naming_the_setting_and_the_command(
        home: Path, tmp_path: Path) -> None:
    config = demo_config_file(tmp_path / "two.yaml", **{"training.num_processes": 2})
    out = cli("train", str(config), check=False)
    assert out.returncode != 0 and "training.num_processes" in out.stderr + out.stdout
    assert "medcot enqueue" in out.stderr + out.stdout
    assert list_runs() == [], "nothing was queued"
