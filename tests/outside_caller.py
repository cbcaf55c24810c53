"""How the hosting tests call the running app from outside: through ``gradio_client`` with the inputs a browser
would send, over plain HTTP, and with the session cookie a Hugging Face sign-in leaves (see test_hosting_api.py)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

import itsdangerous
from gradio_client import Client, handle_file

from medcot_ui.hosting.access import action_for_endpoint

OAUTH_SECRET = "stand-in-oauth-client-secret-for-this-test"
OAUTH_SCOPES = "openid profile read-repos write-repos manage-repos"
REFUSALS = ("Sign in with Hugging Face to", "who is not on this Space's allow-list", "who may look but not",
            "Sign in to ")


def session_cookie(username: str, orgs: tuple[str, ...] = (), secret: str = OAUTH_SECRET) -> dict[str, str]:
    """The cookie Gradio's OAuth callback sets after a Hugging Face sign-in (gradio/oauth.py + Starlette's
    SessionMiddleware: base64 JSON signed with sha256(client secret + "-v4"))."""
    oauth_info = {"access_token": f"hf_oauth_token_of_{username}", "token_type": "bearer",
                  "scope": OAUTH_SCOPES, "expires_at": int(time.time()) + 3600,
                  "userinfo": {"sub": username, "name": username.title(), "preferred_username": username,
                               "profile": f"https://huggingface.co/{username}", "picture": "",
                               "orgs": [{"sub": o, "name": o, "preferred_username": o} for o in orgs]}}
    signer = itsdangerous.TimestampSigner(hashlib.sha256(f"{secret}-v4".encode()).hexdigest())
    value = signer.sign(b64encode(json.dumps({"oauth_info": oauth_info}).encode())).decode()
    return {"Cookie": f"session={value}"}


def db_snapshot(home: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(f"file:{home / 'runs.db'}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}


def files_under(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()
            and not p.name.startswith("runs.db") and p.name != "app-state.json"}


def api_info(client: Client) -> dict[str, Any]:
    if not hasattr(client, "_medcot_api_info"):
        client._medcot_api_info = client.view_api(return_format="dict", print_info=False)  # type: ignore[attr-defined]
    return client._medcot_api_info  # type: ignore[attr-defined]


def endpoint_args(client: Client, api_name: str, samples: Path) -> list[Any]:
    """What a browser would send untouched: each input component's current value (the example input where
    the config has none), and for a file input a small local file of a type it accepts (the examples point at
    the internet)."""
    params = api_info(client)["named_endpoints"][api_name]["parameters"]
    dep = next(d for d in client.config["dependencies"] if f"/{d.get('api_name')}" == api_name)
    components = {c["id"]: c for c in client.config["components"]}
    inputs = [components[i] for i in dep["inputs"] if components[i].get("type") != "state"]
    args = []
    for i, param in enumerate(params):
        props = inputs[i].get("props", {}) if len(inputs) == len(params) else {}
        if param["component"].lower() in {"file", "uploadbutton", "files"}:
            accepted = props.get("file_types") or [".jsonl"]
            sample = next((p for p in sorted(samples.iterdir()) if p.suffix in accepted), None)
            assert sample is not None, f"{api_name}: no sample file of a type in {accepted}"
            args.append(handle_file(str(sample)))
            continue
        value = props.get("value")
        args.append(value if value is not None else param.get("example_input"))
    return args


def call(client: Client, api_name: str, args: list[Any]) -> str:
    """'ok', 'refused: <why>' or 'error: <what>' (an error that is not an access refusal)."""
    try:
        client.predict(*args, api_name=api_name)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - AppError, or the upload route's 403 before the call
        text = str(exc)
        if any(r in text for r in REFUSALS) or "403" in text and "upload" in text.lower():
            return f"refused: {text[:90]}"
        return f"error: {type(exc).__name__}: {text[:90]}"


def mutating_endpoints(client: Client) -> dict[str, str]:
    named = api_info(client)["named_endpoints"]
    found = {name: action for name in named if (action := action_for_endpoint(name))}
    assert found, f"no mutating endpoint found among {sorted(named)}"
    return found


def print_table(title: str, rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}")
    for row in rows:
        print("  " + " | ".join(f"{c:<22}" for c in row))


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def multipart(name: str, content: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = "medcot-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
