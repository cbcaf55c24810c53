"""Hub tokens, W&B keys and passwords are scrubbed from text, log records, printed output and database rows."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from medcot_ui import redact
from medcot_ui.redact import REDACTED, RedactingFilter, scrub, secret_values

from conftest import ROOT, child_env, fake_hf_token, fake_wandb_key

HF_CANARY = fake_hf_token("CanaryToken")
WANDB_CANARY = fake_wandb_key("canary")
OTHER_HF, OTHER_WANDB = fake_hf_token("other"), fake_wandb_key("other")


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HF_CANARY)
    monkeypatch.setenv("WANDB_API_KEY", WANDB_CANARY)
    monkeypatch.setenv("MEDCOT_USERS", "alice:alices-long-password,bob:bobs-password")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "plain-words-but-secret")


def test_exact_secret_values_from_the_environment_are_redacted_wherever_they_appear(secrets_env):
    text = (f"downloading with {HF_CANARY}; wandb={WANDB_CANARY}x; login alice/alices-long-password; "
            "svc plain-words-but-secret")
    clean = scrub(text)
    for secret in (HF_CANARY, WANDB_CANARY, "alices-long-password", "plain-words-but-secret"):
        assert secret not in clean
    assert clean.count(REDACTED) == 4
    assert "bobs-password" in secret_values()


def test_a_token_typed_into_a_form_is_redacted_too(secrets_env):
    typed = "a-token-from-the-publish-form"
    assert scrub(f"401 for {typed} and {HF_CANARY}", (typed, None)) == f"401 for {REDACTED} and {REDACTED}"


def test_a_helper_process_gets_no_secret_but_those_it_is_given(secrets_env):
    env = redact.child_env(keep=("HF_TOKEN",), CUDA_VISIBLE_DEVICES="")
    assert env["HF_TOKEN"] == HF_CANARY and env["CUDA_VISIBLE_DEVICES"] == ""
    assert "WANDB_API_KEY" not in env and "MY_SERVICE_TOKEN" not in env and "MEDCOT_USERS" not in env
    assert env["PYTHONPATH"].split(":")[0] == str(ROOT)
    assert "HF_TOKEN" not in redact.child_env()


def test_token_shapes_and_secret_keys_are_redacted_even_when_not_in_the_environment():
    cases = {
        f"use {OTHER_HF} please": "use [REDACTED] please",
        "org token api_org_" + "x" * 26: "org token [REDACTED]",
        f"WANDB_API_KEY={OTHER_WANDB}": "WANDB_API_KEY=[REDACTED]",
        '{"api_key": "sk-live-1234567890"}': '{"api_key": "[REDACTED]"}',
        "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.abc": "Authorization: Bearer [REDACTED]",
        f"$ wandb login --relogin {OTHER_WANDB}": "$ wandb login --relogin [REDACTED]",
        f"machine api.wandb.ai\n  login user\n  password {OTHER_WANDB}":
            "machine api.wandb.ai\n  login user\n  password [REDACTED]",
        "OAuthToken(token='opaque-oauth-value', scope='openid')": "OAuthToken(token='[REDACTED]', scope='openid')",
    }
    for text, expected in cases.items():
        assert scrub(text) == expected


def test_ordinary_text_is_left_alone():
    for text in ['{"pad_token": "<|finetune_right_pad_id|>", "eos_token": "</s>", "max_new_tokens": 1200}',
                 f"Hub commit {fake_wandb_key('commit')} pushed",  # a commit id is not a key
                 "password required: sign in first", "tokens/s 312.5, loss 1.93", "hf_hub_download failed", ""]:
        assert scrub(text) == text


def test_the_log_filter_scrubs_messages_arguments_and_tracebacks(secrets_env):
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token is %s for %s", (HF_CANARY, "alice"), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "token is [REDACTED] for alice"
    try:
        raise RuntimeError(f"request failed with header Authorization: Bearer {HF_CANARY}")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    RedactingFilter().filter(record)
    assert HF_CANARY not in logging.Formatter().format(record)
    clean = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s "%s %s"', ("1.2.3.4", "GET", "/"),
                              None)
    RedactingFilter().filter(clean)
    assert clean.args == ("1.2.3.4", "GET", "/")  # handlers that format args themselves keep working


def test_an_installed_process_never_prints_logs_raises_or_stores_a_secret(tmp_path):
    """A real interpreter: install(), then print, log (root and a non-propagating logger), write a DB row and
    die of an uncaught exception, all carrying the token."""
    script = textwrap.dedent("""
        import logging, os, sys, warnings
        from medcot_ui.redact import install
        install()
        token = os.environ["HF_TOKEN"]
        print("printed", token)
        logging.basicConfig(level=logging.INFO)
        logging.getLogger("medcot").warning("logged %s", token)
        quiet = logging.getLogger("uvicorn.error"); quiet.propagate = False
        quiet.addHandler(logging.StreamHandler(sys.stderr)); quiet.error("uvicorn saw " + token)
        warnings.warn("warned " + token)
        from medcot_ui.jobkinds import enqueue
        from medcot_ui.training.presets import quick_demo
        from medcot_ui.store import add_event, run_events
        run = enqueue("train", quick_demo())
        add_event(run.id, "event with " + token)
        print("stored", [e.message for e in run_events(run.id)][-1])
        raise RuntimeError("crashed with " + token)
    """)
    env = child_env(HF_TOKEN=HF_CANARY, MEDCOT_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    for expected in ("printed [REDACTED]", "logged [REDACTED]", "uvicorn saw [REDACTED]", "warned [REDACTED]",
                     "stored event with [REDACTED]", "crashed with [REDACTED]"):
        assert expected in output, output
    assert HF_CANARY not in output
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*"))  # the WAL file too
    assert stored and HF_CANARY.encode() not in stored
