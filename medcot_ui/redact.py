"""Keep Hub tokens, W&B keys and passwords out of logs, printed output and database rows.

:func:`scrub` replaces secrets in a text: the exact values of the secret environment variables (``HF_TOKEN``,
``WANDB_API_KEY``, the passwords in ``MEDCOT_USERS`` ...), anything shaped like a Hub token (``hf_...``), and the
value after a secret-looking key (``api_key=...``, ``Authorization: Bearer ...``, ``wandb login KEY``).
:func:`install` applies it to every log record, to ``sys.stdout``/``sys.stderr`` and to every row written
through SQLAlchemy, in the process that calls it: the app, the worker and each training process call it first.
Secrets reach child processes through their environment only, never their command line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

REDACTED = "[REDACTED]"

# Variables that hold a secret whatever their value looks like.
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN",
                   "HF_API_TOKEN", "WANDB_API_KEY", "OAUTH_CLIENT_SECRET")
# Any other variable whose name says it holds a secret (OPENAI_API_KEY, MY_SERVICE_TOKEN, DB_PASSWORD ...).
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY)$")
_MIN_SECRET_LEN = 8  # shorter values would redact ordinary words

_PATTERNS = (
    # Hub user access tokens and legacy org tokens.
    (re.compile(r"\b(?:hf|api_org)_[A-Za-z0-9]{20,}"), lambda m: REDACTED),
    # The value after a secret-looking key: api_key=..., "password": "...", WANDB_API_KEY: ..., token='...'.
    (re.compile(r"(?i)(\b(?:hf_token|hub_token|api_token|access_token|auth_token|wandb_api_key|api_key|apikey"
                r"|client_secret|secret|password|passwd)[\"']?\s*[:=]\s*[\"']?|\btoken\s*=\s*[\"']?)"
                r"([^\s\"',;&)}\]]+)"), lambda m: m.group(1) + REDACTED),
    # HTTP auth headers and `wandb login KEY`.
    (re.compile(r"(?i)(\bbearer\s+|\bwandb\s+login\s+(?:--\S+\s+)*)([A-Za-z0-9._~+/=-]{8,})"),
     lambda m: m.group(1) + REDACTED),
    # A W&B key (40 hex digits) in a .netrc line, which is how wandb stores it: `password 0123...`.
    (re.compile(r"(?i)(\bpassword\s+)([0-9a-f]{40})\b"), lambda m: m.group(1) + REDACTED),
)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """The secret values present in the environment, longest first."""
    env = os.environ if environ is None else environ
    values = {env[name] for name in SECRET_ENV_VARS if env.get(name)}
    values |= {v for k, v in env.items() if v and _SECRET_NAME.search(k.upper())}
    for entry in env.get("MEDCOT_USERS", "").replace("\n", ",").split(","):
        values.add(entry.partition(":")[2])  # the password part of user:password
    return sorted((v for v in values if len(v.strip()) >= _MIN_SECRET_LEN), key=len, reverse=True)


_exact_cache: tuple[tuple, re.Pattern[str] | None] = ((), None)


def _exact_pattern() -> re.Pattern[str] | None:
    """The exact-values pattern, rebuilt when the environment changes (a token set at run time, tests). Scanning
    every variable costs ~100 us, so the check is cheap: the named secrets' values and the number of variables."""
    global _exact_cache
    key = (len(os.environ), *(os.environ.get(name) for name in (*SECRET_ENV_VARS, "MEDCOT_USERS")))
    if key != _exact_cache[0]:
        values = secret_values()
        _exact_cache = (key, re.compile("|".join(map(re.escape, values))) if values else None)
    return _exact_cache[1]


def scrub(text: str, extra: tuple[str | None, ...] = ()) -> str:
    """``text`` with every secret it holds replaced by [REDACTED]; ``extra``: secrets that are not in the
    environment (a token typed into the Publish form)."""
    if not text:
        return text
    for value in extra:
        if value:
            text = text.replace(value, REDACTED)
    exact = _exact_pattern()
    if exact is not None:
        text = exact.sub(REDACTED, text)
    for pattern, replace in _PATTERNS:
        text = pattern.sub(replace, text)
    return text


def child_env(keep: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """The environment for one of our helper processes (``python -m medcot_ui....``): ours minus every secret
    except the variables named in ``keep``, with this project importable, plus ``extra``."""
    secrets = set(secret_values()) - {os.environ.get(name) for name in keep}

    def secret(name: str, value: str) -> bool:  # by value, or by a name that holds secrets (MEDCOT_USERS: passwords)
        return value in secrets or name in (*SECRET_ENV_VARS, "MEDCOT_USERS") or bool(_SECRET_NAME.search(name.upper()))

    env = {k: v for k, v in os.environ.items() if k in keep or not secret(k, v)}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


class RedactingFilter(logging.Filter):
    """Scrubs a record's message, exception and stack text. Leaves a clean record untouched (some handlers,
    e.g. uvicorn's access log, format from ``record.args`` themselves)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report, not ours
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrub(text)
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


class RedactingStream:
    """A text stream that scrubs what is written to it (wraps sys.stdout / sys.stderr)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(scrub(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _scrub_rows(session: Any, _flush_context: Any, _instances: Any) -> None:
    """SQLAlchemy before_flush hook: no secret is ever written into a row (errors, events, configs)."""
    from sqlalchemy import inspect as sa_inspect

    for obj in list(session.new) + list(session.dirty):
        for attr in sa_inspect(obj).mapper.column_attrs:
            value = getattr(obj, attr.key, None)
            if isinstance(value, str) and value:
                clean = scrub(value)
                if clean != value:
                    setattr(obj, attr.key, clean)


_installed = False


def install() -> None:
    """Scrub this process's logs, stdout/stderr and database writes (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    redacting = RedactingFilter()
    previous_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        # A factory sees every record of every logger, including those (like uvicorn's) that do not propagate
        # to the root logger and so never meet a filter installed there.
        record = previous_factory(*args, **kwargs)
        redacting.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    root = logging.getLogger()
    root.addFilter(redacting)
    for handler in root.handlers:
        handler.addFilter(redacting)
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    event.listen(Session, "before_flush", _scrub_rows)
