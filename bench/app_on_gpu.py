"""The whole app, as a person uses it, driven through its own web API (gradio_client), printing what they would see.

Starts ``python app.py`` (with its background worker) on a fresh data folder, then:
  1. Dataset: uploads a JSONL file of rows (the Dataset tab's upload) and prints the tab's verdict;
  2. Train: loads a run config into the Train form (its "Load config" button) and presses Launch;
  3. Runs: follows the run's progress and metrics until it ends;
  4. Compare: asks one question, timing the status messages, the first token and both panes' speed;
  5. Publish: exports the adapter locally and prints the files.

    python bench/app_on_gpu.py --work /tmp/medcot-gpu            # the recipe on the random 8B (GPU machine)
    python bench/app_on_gpu.py --demo                            # the Quick demo preset on the demo model (CPU)

``--work`` holds ``model/`` and ``rows.jsonl`` from bench/make_random_8b.py (built when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTION = ("A 61-year-old woman has involuntary urine loss when she coughs or sneezes, but none at night. On "
            "cystometry, what would her residual volume and detrusor contractions most likely show?")
T0 = time.perf_counter()


def say(what: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {what}", flush=True)


def start_app(home: Path, port: int) -> tuple[subprocess.Popen[bytes], Any]:
    from gradio_client import Client

    env = dict(os.environ, MEDCOT_HOME=str(home), MEDCOT_PORT=str(port), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    log = open(home / "app.log", "wb")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app exited ({proc.returncode}):\n{(home / 'app.log').read_text()[-3000:]}")
        try:
            return proc, Client(f"http://127.0.0.1:{port}", verbose=False)
        except Exception:  # noqa: BLE001 - not serving yet
            time.sleep(1)
    raise SystemExit("the app did not serve within 240 s")


def dependency(client: Any, api_name: str) -> dict[str, Any]:
    return next(d for d in client.config["dependencies"] if d.get("api_name") == api_name)


def form_values_for_launch(client: Any, config_file: Path) -> list[Any]:
    """The Train form after "Load config", in the order the Launch button's endpoint takes them."""
    from gradio_client import handle_file

    loaded = client.predict(handle_file(str(config_file)), api_name="/upload_config")
    by_id = dict(zip(dependency(client, "upload_config")["outputs"], loaded))
    say(f"Train tab: {loaded[-1]}")
    return [by_id[i] for i in dependency(client, "launch_training")["inputs"]]


def follow_run(client: Any, home: Path, run_id: int, limit_s: float) -> str:
    """Print the Runs tab's progress for the run whenever it changes; returns the final status."""
    import sqlite3

    deadline, last = time.monotonic() + limit_s, None
    while time.monotonic() < deadline:
        detail = client.predict(api_name="/show_run")
        progress = " | ".join(str(part).strip().replace("\n", " ")[:160] for part in detail[:3] if part)
        if progress != last:
            say(f"Runs tab: {progress}")
            last = progress
        with sqlite3.connect(home / "runs.db") as db:
            status = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            metrics = db.execute("SELECT step, loss, seconds_per_step, tokens_per_s, gpu_mem_gb FROM metrics "
                                 "WHERE run_id = ? AND loss IS NOT NULL ORDER BY step", (run_id,)).fetchall()
        if status in ("succeeded", "failed", "cancelled", "interrupted"):
            for step, loss, sps, tps, mem in metrics:
                say(f"  metrics: step {step} loss {loss:.4f} {sps or 0:.3f} s/step {tps or 0:,.0f} tokens/s "
                    f"{mem or 0:.1f} GB")
            return status
        time.sleep(3)
    return "still running after the time limit"


def compare(client: Any, run_id: int, tokens: int) -> None:
    """One comparison, streamed: every new status line with its time, then both panes' last lines."""
    client.predict(None, api_name="/list_finished_runs")  # the ↻ beside the run menu: lists finished runs
    start = time.perf_counter()
    job = client.submit(run_id, QUESTION, None, tokens, 0.6, 0.95, 3407, True, False, api_name="/compare")
    seen: set[str] = set()
    panes: dict[str, Any] = {}
    for status, base, tuned, _ in job:
        line = str(status).strip().splitlines()[0] if status else ""
        phase = line.split("·")[0].strip()  # the phase, not the token counts that change every step
        if phase and phase not in seen:
            seen.add(phase)
            say(f"Compare tab: {line[:300]}")
        panes.update({k: v for k, v in (("base", base), ("tuned", tuned)) if isinstance(v, list)})
    status = job.result()[0]
    say(f"Compare tab, done in {time.perf_counter() - start:.1f} s: {str(status).strip()[:400]}")
    for label, messages in panes.items():
        say(f"  {label} pane ends: {str(messages[-1].get('content') if messages else '')[-240:]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("MEDCOT_GPU_WORK", "/tmp/medcot-gpu")))
    parser.add_argument("--demo", action="store_true", help="the Quick demo preset on the demo model (CPU check)")
    parser.add_argument("--steps", type=int, default=20, help="training steps of the launched run")
    parser.add_argument("--tokens", type=int, default=256, help="max new tokens of the comparison")
    parser.add_argument("--port", type=int, default=7399)
    args = parser.parse_args()
    from gradio_client import handle_file

    from medcot_ui.settings import DEMO_DATA_FILE
    from medcot_ui.training.presets import quick_demo, recipe

    home = Path(tempfile.mkdtemp(prefix="medcot-app-"))
    rows = args.work / "rows.jsonl"
    if args.demo:
        rows = home / "rows.jsonl"
        rows.write_text(Path(DEMO_DATA_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    elif not (args.work / "model" / "config.json").exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_random_8b.py"), str(args.work)], check=True)
    proc, client = start_app(home, args.port)
    try:
        say(f"app serving (data folder {home})")
        note, stored, *_ = client.predict(handle_file(str(rows)), api_name="/on_upload")
        say(f"Dataset tab: {note.splitlines()[0][:300]}")
        base = quick_demo() if args.demo else recipe().with_overrides({"model.base_model": str(args.work / "model")})
        config = base.with_overrides({"name": "app-on-gpu", "data.source": "file", "data.file_path": stored,
                                      "data.split": "train", "training.max_steps": args.steps,
                                      "training.save_steps": args.steps, "training.logging_steps": 5})
        config_file = home / "app-on-gpu.yaml"
        config_file.write_text(config.to_yaml(), encoding="utf-8")
        launched = client.predict(*form_values_for_launch(client, config_file), api_name="/launch_training")
        message = next((str(m) for m in launched if isinstance(m, str) and "run" in m.lower()), str(launched)[:300])
        say(f"Train tab: {message}")
        run_id = int(message.split("Queued run ")[1].split()[0])
        status = follow_run(client, home, run_id, limit_s=300)
        say(f"run {run_id}: {status}")
        if status != "succeeded":
            print((home / "runs" / f"run-{run_id}" / "train.log").read_text(errors="replace")[-3000:])
            raise SystemExit(1)
        compare(client, run_id, args.tokens)
        shown = client.predict(run_id, "adapter", api_name="/export_locally")
        say(f"Publish tab: {next((str(o).strip() for o in shown if isinstance(o, str) and o.strip()), '')[:400]}")
        files = [o for o in shown if isinstance(o, dict) and str(o.get("value", "")).endswith(".zip")]
        say(f"  download offered: {json.dumps(files)[:200]}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
