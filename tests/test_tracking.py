"""Weights & Biases reporting is optional: refused clearly when it cannot work, and offline mode needs no network."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import cli, demo_config_file
from medcot_ui.training import tracking
from medcot_ui.training.config import RunConfig
from medcot_ui.store import get_run, run_metrics

WANDB = importlib.util.find_spec("wandb") is not None
# Any network use would fail at once: proxies and the W&B server point at a closed local port.
NO_NETWORK = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
              "WANDB_BASE_URL": "http://127.0.0.1:9"}


def test_wandb_problems_name_the_field_and_the_fix(monkeypatch, tmp_path):
    online = RunConfig().with_overrides({"tracking.report_to": "wandb", "tracking.wandb_mode": "online"})
    offline = online.with_overrides({"tracking.wandb_mode": "offline"})
    assert tracking.tracking_problems(RunConfig()) == []
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    [problem] = tracking.tracking_problems(offline)
    assert problem.startswith("tracking.report_to: ") and "pip install wandb" in problem
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: object())
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert tracking.tracking_problems(offline) == []
    [problem] = tracking.tracking_problems(online)
    assert problem.startswith("tracking.wandb_mode: ") and "WANDB_API_KEY" in problem
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert tracking.tracking_problems(online) == []


@pytest.mark.skipif(WANDB, reason="wandb is installed here; this checks the message when it is not")
def test_training_with_wandb_reporting_but_no_wandb_fails_with_a_clear_message_not_a_traceback(home, tmp_path):
    config = demo_config_file(tmp_path / "c.yaml", **{"tracking.report_to": "wandb", "tracking.wandb_mode": "offline"})
    proc = cli("train", str(config), check=False)
    assert proc.returncode == 1 and "run 1: failed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    run = get_run(1)
    assert run.error.startswith("tracking.report_to: Weights & Biases reporting needs the wandb package")
    log = Path(run.output_dir) / "train.log"
    assert not log.exists() or "Traceback" not in log.read_text()


@pytest.mark.skipif(not WANDB, reason="needs wandb (pip install wandb)")
def test_wandb_offline_mode_trains_without_a_network_and_keeps_our_own_metrics(home, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    config = demo_config_file(tmp_path / "c.yaml", **{"tracking.report_to": "wandb", "tracking.wandb_mode": "offline",
                                                     "training.max_steps": 4})
    proc = cli("train", str(config), check=False, **NO_NETWORK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = get_run(1)
    assert run.status == "succeeded"
    assert list((Path(run.output_dir) / "wandb").glob("offline-run-*/run-*.wandb"))  # W&B's own offline record
    assert [m.step for m in run_metrics(1)] == [1, 2, 3, 4]  # the dashboard's metrics, as always
