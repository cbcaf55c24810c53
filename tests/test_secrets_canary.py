"""A token canary in the environment never shows up in logs, database rows, process arguments or pages.

The real app runs with canary values in HF_TOKEN, HUGGING_FACE_HUB_TOKEN and WANDB_API_KEY, starts its real
worker, which trains a demo run in a real training process and fails a run that needs the (unreachable) Hub;
the publish path runs with the environment's token (local mode uses it) and fails offline. Then everything the
app wrote or served is searched for the canaries, and the training process is checked to have received the token
through its environment, not its command line.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from gradio_client import Client

from medcot_ui.hosting.access import action_for_endpoint
from medcot_ui.store import get_run, list_runs

from conftest import cli, demo_config_file, fake_hf_token, fake_wandb_key, start_app, wait_for
from outside_caller import endpoint_args

CANARIES = {"HF_TOKEN": fake_hf_token("CanaryQ7rT2vX9wZ4kM6pN8sL1"),
            "HUGGING_FACE_HUB_TOKEN": fake_hf_token("CanaryHubAlt2wE4rT6yU8"),
            "WANDB_API_KEY": fake_wandb_key("canary")}


def our_processes(home: Path) -> dict[int, tuple[bytes, bytes]]:
    """pid -> (command line, environment) of every live process started for this test's data directory."""
    found = {}
    marker = f"MEDCOT_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if marker in environ.split(b"\0"):
                found[int(entry.name)] = ((entry / "cmdline").read_bytes(), environ)
        except OSError:
            continue  # exited, or not ours to read
    return found


def search(blob: bytes | str) -> list[str]:
    data = blob.encode(errors="replace") if isinstance(blob, str) else blob
    return [name for name, value in CANARIES.items() if value.encode() in data]


def test_a_token_canary_never_leaves_the_environment(home, processes, tmp_path, monkeypatch):
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)  # the test's own child processes (CLI, app) inherit them
    config = demo_config_file(tmp_path / "demo.yaml", **{"training.max_steps": 4, "training.save_steps": 2,
                                                        "name": "canary-run"})
    cli("enqueue", str(config))
    app = start_app(processes, home)

    # While the run trains, look at every process of ours: the token is in the environment, never in argv.
    seen: dict[int, tuple[bytes, bytes]] = {}

    def finished() -> bool:
        seen.update(our_processes(home))
        run = get_run(1)
        return run is not None and run.status not in {"queued", "running"}

    wait_for(finished, timeout=300, interval=0.2, what="the canary run to finish")
    assert get_run(1).status == "succeeded", get_run(1).error
    trainers = [env for cmd, env in seen.values() if b"jobs.train" in cmd]
    assert trainers, "never saw the training process"
    assert all(CANARIES["HF_TOKEN"].encode() in env for env in trainers)  # passed by environment
    argv_leaks = {pid: cmd.replace(b"\0", b" ") for pid, cmd in seen.items() if search(cmd)}
    assert not argv_leaks

    # Drive every endpoint as a user would (local mode: all allowed): a launch with the form's defaults (the
    # Hub-hosted recipe model, unreachable here, so that run fails), a publish with the environment's token
    # (fails offline), and every read-only view.
    client = Client(app.url, verbose=False)
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "rows.jsonl").write_text('{"Question": "q", "Complex_CoT": "r", "Response": "a"}\n')
    (samples / "config.yaml").write_text(config.read_text())
    served = [client.config, client.view_api(return_format="dict", print_info=False)]
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for api_name, info in sorted(named.items()):
        if action_for_endpoint(api_name) in {"delete", "cancel", "compare"}:
            continue  # nothing secret-bearing, and slow (compare) or destructive
        args = endpoint_args(client, api_name, samples)
        for i, param in enumerate(info["parameters"]):  # point run pickers at the finished run
            if "run" in (param.get("parameter_name") or param.get("label") or "").lower():
                args[i] = 1
        try:
            served.append(client.predict(*args, api_name=api_name))
        except Exception as exc:  # noqa: BLE001 - an error message is served too
            served.append(str(exc))
    wait_for(lambda: all(r.status not in {"queued", "running"} for r in list_runs()), timeout=180,
             what="the launched run to end")
    for path in ("/", "/config", "/gradio_api/info"):
        with urllib.request.urlopen(app.url + path, timeout=30) as resp:
            served.append(resp.read().decode(errors="replace"))

    leaks = {"pages and API results": search(json.dumps(served, default=str)),
             "app, worker and CLI output": search(processes.output(app.proc))}
    for path in home.rglob("*"):  # the database (and its WAL), train.log, config.yaml, exports ...
        if path.is_file() and (found := search(path.read_bytes())):
            leaks[str(path.relative_to(home))] = found
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}
    assert len(list_runs()) >= 2  # the launch from the form queued (and failed) a second run
