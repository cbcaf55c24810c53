"""Shared fixtures: a fresh data directory per test, the demo model built once, real processes and a real app.

Everything is real: a SQLite file in a temp dir, `python -m jobs.worker` processes, `python app.py` served on a
free port, Debian's chromium driven by Playwright.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; returns its value or fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def fake_hf_token(tag: str) -> str:
    """A Hub-token-shaped test value, assembled at run time so that no token-like string is committed."""
    return "hf_" + (tag + "0" * 34)[:34]


def fake_wandb_key(tag: str) -> str:
    """A W&B-key-shaped test value (40 hex digits), assembled at run time for the same reason."""
    import hashlib

    return hashlib.sha1(tag.encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def built_demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model, built once per test run and shared by the xdist workers (each test's data dir gets a
    copy): the first worker builds it, the others wait on its lock."""
    from medcot_ui.training.models import ensure_demo_model

    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # basetemp is this run's folder / the worker's own
        run_dir = run_dir.parent
    return ensure_demo_model(run_dir / "demo-model" / "demo-tiny-llama")


def random_lora_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A rank-8 PEFT LoRA on all seven projections with random non-zero B, strong enough that greedy tokens change
    within a few steps (a trained demo adapter barely moves a random model)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from medcot_ui.training.config import LORA_TARGETS

    torch.manual_seed(seed)
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                          LoraConfig(r=8, lora_alpha=16, target_modules=LORA_TARGETS, init_lora_weights=False,
                                     task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.mul_(4.0)
    peft.save_pretrained(out)
    return out


def use_home(mp: pytest.MonkeyPatch, home: Path, demo_model: Path) -> Path:
    """Make ``home`` the data directory (with a copy of the demo model) for this process and its children."""
    from medcot_ui.store import dispose_engines

    shutil.copytree(demo_model, home / "models" / "demo-tiny-llama")
    mp.setenv("MEDCOT_HOME", str(home))
    mp.delenv("MEDCOT_DATABASE_URL", raising=False)
    mp.setenv("MEDCOT_LEASE_SECONDS", "3")
    mp.setenv("MEDCOT_POLL_SECONDS", "0.2")
    mp.setenv("HF_HUB_OFFLINE", "1")
    dispose_engines()
    return home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built_demo_model: Path) -> Iterator[Path]:
    """A fresh MEDCOT_HOME (runs.db, runs/, models/) for this test, with the demo model in place."""
    from medcot_ui.store import dispose_engines

    home = use_home(monkeypatch, tmp_path / "home", built_demo_model)
    yield home
    dispose_engines()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server for this test session (skipped only where its binaries are not installed)."""
    from postgres_server import PostgresServer, missing_reason

    if reason := missing_reason():
        pytest.skip(reason)
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The run store's URL, once per backend: the test's own SQLite file in ``home``, then an empty database on
    the session's PostgreSQL server. Child processes inherit it through MEDCOT_DATABASE_URL."""
    from medcot_ui.settings import database_url
    from medcot_ui.store import dispose_engines

    if request.param == "postgresql":
        monkeypatch.setenv("MEDCOT_DATABASE_URL", request.getfixturevalue("postgres_server").new_database())
        dispose_engines()
    return database_url()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a real child process (inherits the test's MEDCOT_HOME and friends)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cli(*args: str, check: bool = True, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m medcot ARGS`` as a user would."""
    proc = subprocess.run([sys.executable, "-m", "medcot", *args], cwd=ROOT, env=child_env(**env),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"medcot {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class Processes:
    """Starts real processes for a test and kills whatever is left at the end."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, name: str = "proc", **env: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=child_env(**env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = Path(log.name)  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def worker(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self.start("-m", "jobs.worker", *args, name="worker", **env)

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def demo_config_file(path: Path, **overrides: Any) -> Path:
    """Write the Quick demo preset (with dotted overrides) as YAML and return its path."""
    from medcot_ui.training.presets import quick_demo

    config = quick_demo().with_overrides(overrides) if overrides else quick_demo()
    path.write_text(config.to_yaml(), encoding="utf-8")
    return path


# A few steps at a high learning rate: enough for the random-init demo model's adapter to change its greedy output
# (what Compare must show), in seconds rather than the preset's minute.
CONTRAST_DEMO = {"training.max_steps": 6, "training.save_steps": 6, "training.learning_rate": 2e-2,
                 "training.logging_steps": 1}


def train_demo_run(**overrides: Any) -> int:
    """Train the Quick demo preset in this process (into MEDCOT_HOME) and return the finished run's id."""
    from jobs.train import train_direct
    from medcot_ui.training.presets import quick_demo

    run_id, status = train_direct(quick_demo().with_overrides({**CONTRAST_DEMO, **overrides}))
    assert status == "succeeded", f"demo run {run_id} ended {status}"
    return run_id


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian chromium is not installed: run `make test` (it installs it) or scripts/install-browser.sh")
    return path


class RunningApp:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], home: Path):
        self.url, self.proc, self.home = url, proc, home


def start_app(processes: Processes, home: Path, *args: str, **env: str) -> RunningApp:
    """Start ``python app.py`` the README's way on a free port and wait until it serves."""
    import urllib.request

    port = free_port()
    proc = processes.start("app.py", *args, name="app", MEDCOT_HOME=str(home), MEDCOT_PORT=str(port), **env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"app exited ({proc.returncode}):\n{processes.output(proc)[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_for(up, timeout=120, interval=0.5, what="the app to serve its page")
    return RunningApp(url, proc, home)


@pytest.fixture
def browser(chromium_path: str) -> Iterator[Any]:
    """A headless Debian chromium driven by Playwright (no Playwright browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        yield b
        b.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU (run `make test-gpu` on a GPU machine)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def trained_demo_home(tmp_path_factory: pytest.TempPathFactory, built_demo_model: Path) -> Path:
    """A data directory holding one finished Quick demo run (with eval loss), trained once per test session.

    Read-only for tests: use ``demo_run``, which copies it into the test's own ``home``.
    """
    from jobs.train import train_direct
    from medcot_ui.training.presets import quick_demo
    from medcot_ui.store import dispose_engines

    with pytest.MonkeyPatch.context() as mp:
        home = use_home(mp, tmp_path_factory.mktemp("trained") / "home", built_demo_model)
        run_id, status = train_direct(quick_demo().with_overrides({"training.eval_steps": 10}))
        dispose_engines()  # closes the last connection: SQLite folds the WAL into runs.db
    assert (run_id, status) == (1, "succeeded"), f"demo run {run_id} ended {status}"
    return home


@pytest.fixture
def demo_run(home: Path, trained_demo_home: Path) -> int:
    """The id of a finished Quick demo run in this test's fresh ``home`` (a copy of the session's trained run)."""
    import sqlite3

    from medcot_ui.store import dispose_engines

    dispose_engines()
    shutil.copy2(trained_demo_home / "runs.db", home / "runs.db")
    shutil.copytree(trained_demo_home / "runs", home / "runs")
    with sqlite3.connect(home / "runs.db") as db:
        db.execute("UPDATE runs SET output_dir = replace(output_dir, ?, ?)", (str(trained_demo_home), str(home)))
    return 1
