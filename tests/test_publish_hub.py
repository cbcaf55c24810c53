"""Publishing to the Hub: every failure is named, recorded and retryable, and the token never leaks.

This machine cannot reach the Hugging Face Hub. The unreachable cases are real (a closed port, a server that
never answers, offline mode). The cases that need the Hub to answer (bad token, no write access, a taken name,
an upload refused half-way, success) run the real ``huggingface_hub`` client against ``tests/hub_stub.py``, a
stand-in for the Hub's endpoints on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import fake_hf_token, free_port, start_app
from hub_stub import HubStub, RunningStub, user
from medcot_ui.publish import export as publish
from medcot_ui.publish import records
from medcot_ui.publish.hub import HubError

CANARY = fake_hf_token("CANARYtokenNEVERtoBEseen")


@pytest.fixture
def hub() -> Iterator[HubStub]:
    with RunningStub(HubStub(tokens={CANARY: user("alice", orgs=[("medlab", "write"), ("readers", "read")])})) as s:
        yield s


def failed_row(run_id: int):
    (row,) = records.publishes_for_run(run_id)
    assert row.status == "failed" and row.finished_at is not None
    return row


def dump_database(home: Path) -> str:
    """Every row of every table, as text."""
    with sqlite3.connect(home / "runs.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f"SELECT * FROM {t}"))


def all_process_texts() -> str:
    """The command lines and environments of every process this user can read."""
    texts = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("cmdline", "environ"):
            try:
                texts.append(Path(f"/proc/{pid}/{part}").read_bytes().decode(errors="replace"))
            except OSError:
                pass
    return "\n".join(texts)


class ProcessWatcher:
    """Reads every process's command line and environment every 20 ms while a publish runs."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            text = all_process_texts()
            self.samples += 1
            if CANARY in text:
                self.seen.append(text)
            time.sleep(0.02)

    def __enter__(self) -> "ProcessWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- the Hub cannot be reached ----------------------------------------------------------------------------

def test_with_the_hub_unreachable_the_user_is_told_and_the_publish_is_recorded_failed(demo_run: int) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(HubError) as err:
        publish.publish_to_hub(demo_run, "adapter", "quick-demo", CANARY, endpoint=closed)
    assert err.value.kind == "unreachable"
    assert str(err.value).startswith("Cannot reach the Hugging Face Hub at " + closed)
    row = failed_row(demo_run)
    assert row.error == str(err.value) and row.account is None and row.url is None and row.commit_id is None


def test_a_hub_that_never_answers_fails_within_the_reach_timeout_instead_of_hanging(demo_run: int) -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        with pytest.raises(HubError, match="Cannot reach the Hugging Face Hub") as err:
            publish.publish_to_hub(demo_run, "adapter", "quick-demo", CANARY,
                                   endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert time.monotonic() - started < 30, "huggingface_hub has no timeout of its own: ours must apply"
    assert err.value.kind == "unreachable"
    failed_row(demo_run)


def test_offline_mode_is_named_as_the_reason_the_hub_cannot_be_reached(demo_run: int,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match=r"offline mode is on \(HF_HUB_OFFLINE=1"):
        publish.publish_to_hub(demo_run, "adapter", "quick-demo", CANARY)
    failed_row(demo_run)


def test_without_a_token_an_unreachable_hub_is_said_first_with_the_local_export_as_the_way_out(
        hub: HubStub, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "offline mode (HF_HUB_OFFLINE=1" in publish.hub_unreachable_reason()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert "cannot be reached from this machine" in publish.hub_unreachable_reason()
    assert "*Export locally* works without it" in publish.hub_unreachable_reason()
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    assert publish.hub_unreachable_reason() is None


# ---- the Hub answers (stand-in server) --------------------------------------------------------------------

def test_an_invalid_token_is_rejected_by_name_before_anything_is_exported(demo_run: int, hub: HubStub) -> None:
    with pytest.raises(HubError) as err:
        publish.publish_to_hub(demo_run, "adapter", "quick-demo", fake_hf_token("notARealToken"),
                               endpoint=hub.url)
    assert err.value.kind == "invalid_token"
    assert "rejected" in str(err.value) and "settings/tokens" in str(err.value)
    assert not publish.export_root(demo_run).exists(), "nothing is exported for a token that cannot publish"
    assert failed_row(demo_run).account is None


def test_a_read_only_token_has_no_write_access_and_nothing_is_created(demo_run: int, hub: HubStub) -> None:
    hub.tokens[fake_hf_token("readOnlyToken")] = user("bob", role="read")
    with pytest.raises(HubError, match="The token of bob is read-only") as err:
        publish.publish_to_hub(demo_run, "adapter", "quick-demo", fake_hf_token("readOnlyToken"),
                               endpoint=hub.url)
    assert err.value.kind == "no_write_access"
    assert hub.repos == {} and not any(path.startswith("/api/repos/create") for _, path in hub.requests)
    assert failed_row(demo_run).account == "bob"


def test_someone_elses_namespace_is_refused_as_a_taken_name_naming_the_account_to_use(demo_run: int,
                                                                                      hub: HubStub) -> None:
    with pytest.raises(HubError) as err:
        publish.publish_to_hub(demo_run, "adapter", "carol/quick-demo", CANARY, endpoint=hub.url)
    assert err.value.kind == "name_taken"
    assert "'carol' is another account's namespace" in str(err.value)
    assert "Use 'alice/quick-demo' or an organisation you can write to (medlab)" in str(err.value)
    with pytest.raises(HubError, match="no write access to 'readers'"):
        publish.publish_to_hub(demo_run, "adapter", "readers/quick-demo", CANARY, endpoint=hub.url)
    assert hub.repos == {}


def test_a_bare_name_publishes_to_the_tokens_account_privately_with_exactly_the_export(demo_run: int,
                                                                                      hub: HubStub) -> None:
    steps: list[str] = []
    outcome = publish.publish_to_hub(demo_run, "adapter", "quick-demo", CANARY, endpoint=hub.url,
                                     progress=lambda f, d: steps.append(d))
    repo = hub.repos["alice/quick-demo"]
    assert repo.private is True
    assert set(repo.files) == set(outcome.files) == {p.name for p in outcome.folder.iterdir()}
    assert repo.files["adapter_model.safetensors"] == (outcome.folder / "adapter_model.safetensors").read_bytes()
    assert 'from_pretrained("alice/quick-demo")' in repo.files["README.md"].decode()
    (row,) = records.publishes_for_run(demo_run)
    assert (row.status, row.destination, row.target, row.account) == ("succeeded", "hub", "alice/quick-demo",
                                                                       "alice")
    assert row.commit_id == repo.commits[-1] and row.url == f"{hub.url}/alice/quick-demo"
    assert steps[0] == "Checking that the Hub can be reached" and steps[-1] == "Published"
    assert "Creating alice/quick-demo on the Hub as alice" in steps


def test_an_existing_repository_is_only_updated_when_the_user_says_so(demo_run: int, hub: HubStub) -> None:
    publish.publish_to_hub(demo_run, "adapter", "medlab/quick-demo", CANARY, endpoint=hub.url)
    with pytest.raises(HubError, match="medlab/quick-demo already exists. Tick 'Update the repository") as err:
        publish.publish_to_hub(demo_run, "adapter", "medlab/quick-demo", CANARY, endpoint=hub.url)
    assert err.value.kind == "name_taken"
    publish.publish_to_hub(demo_run, "adapter", "medlab/quick-demo", CANARY, update_existing=True,
                           endpoint=hub.url)
    assert len(hub.repos["medlab/quick-demo"].commits) == 2
    assert [p.status for p in records.publishes_for_run(demo_run)] == ["succeeded", "failed", "succeeded"]


def test_an_upload_refused_half_way_is_recorded_failed_and_a_retry_completes_it(demo_run: int,
                                                                               hub: HubStub) -> None:
    hub.fail_commit = 507
    with pytest.raises(HubError) as err:
        publish.publish_to_hub(demo_run, "adapter", "quick-demo", CANARY, endpoint=hub.url)
    assert err.value.kind == "upload_incomplete"
    assert "The upload to alice/quick-demo did not finish" in str(err.value)
    assert "Storage quota exceeded" in str(err.value) and "press Retry" in str(err.value)
    failed = records.last_failed(demo_run)
    assert failed is not None and failed.url, "the repo it created is remembered, so the retry may update it"
    assert failed.commit_id is None and hub.repos["alice/quick-demo"].commits == []

    hub.fail_commit = None
    outcome = publish.publish_to_hub(demo_run, failed.kind, failed.target, CANARY, private=bool(failed.private),
                                     update_existing=bool(failed.url), endpoint=hub.url)
    assert outcome.commit_id == hub.repos["alice/quick-demo"].commits[-1]
    assert records.last_failed(demo_run) is None


def test_the_token_never_reaches_logs_output_rows_child_processes_files_or_errors(
        demo_run: int, hub: HubStub, home: Path, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    messages = []
    with ProcessWatcher() as watcher:
        # A merged publish: the merge runs in a child process while the token is in use.
        outcome = publish.publish_to_hub(demo_run, "merged", "quick-demo", CANARY, endpoint=hub.url)
        hub.fail_commit = 500 + 7
        for repo_text in ("quick-demo", "carol/x", "bad//name"):
            try:
                publish.publish_to_hub(demo_run, "adapter", repo_text, CANARY, endpoint=hub.url,
                                       update_existing=True)
            except (HubError, publish.PublishError) as exc:
                messages += [str(exc), repr(exc), repr(exc.args)]
        try:
            publish.publish_to_hub(demo_run, "adapter", "quick-demo", CANARY,
                                   endpoint=f"http://127.0.0.1:{free_port()}")
        except HubError as exc:
            messages += [str(exc), repr(exc)]
    assert outcome.commit_id and len(messages) == 11
    assert watcher.samples > 3 and not watcher.seen, "the token was visible in a process's argv or environment"
    out, err = capfd.readouterr()
    assert CANARY not in out + err
    assert CANARY not in caplog.text
    assert CANARY not in "\n".join(messages)
    assert CANARY not in dump_database(home)
    exported = [p for p in publish.export_root(demo_run).rglob("*") if p.is_file()]
    assert exported and not any(CANARY.encode() in p.read_bytes() for p in exported)


def test_in_the_running_app_an_unreachable_hub_is_reported_and_the_token_stays_secret(
        demo_run: int, home: Path, processes) -> None:
    from gradio_client import Client

    app = start_app(processes, home, "--no-worker", HF_ENDPOINT=f"http://127.0.0.1:{free_port()}",
                    HF_HUB_OFFLINE="0")
    client = Client(app.url, verbose=False)
    status, *_ = client.predict(demo_run, "adapter", "quick-demo", True, False, CANARY, api_name="/publish_to_hub")
    assert status.startswith("❌ **Cannot reach the Hub.** Cannot reach the Hugging Face Hub at http://127.0.0.1:")
    assert "Recorded as a failed publish" in status
    check, _ = client.predict(demo_run, "quick-demo", CANARY, api_name="/check_publish_target")
    assert "Cannot reach the Hub" in check
    texts = all_process_texts()
    processes.stop_all()
    assert CANARY not in texts
    assert CANARY not in processes.output(app.proc)
    assert CANARY not in status + check
    rows = dump_database(home)
    assert CANARY not in rows
    assert failed_row(demo_run).error.startswith("Cannot reach the Hugging Face Hub at http://127.0.0.1:")
