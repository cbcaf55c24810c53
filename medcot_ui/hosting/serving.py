"""How the app is served in each access mode: address, login, upload and file limits, queue limits.

Pure logic (no Gradio): ``app.py`` passes these options to ``Blocks.queue()`` / ``Blocks.launch()`` after
:func:`problems` found nothing wrong with the configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medcot_ui.hosting.access import parse_users, password_auth
from medcot_ui.settings import PROJECT_DIR, Settings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Exports and uploads (merging may load the whole base model) share one lane of MEDCOT_GPU_CONCURRENCY events.
# Comparisons take turns inside the Compare engine, which owns the one loaded model; training runs in the worker.
EXPORT_LANE = "exports"
# The variables Hugging Face sets on a Space with `hf_oauth: true`.
OAUTH_ENV = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")


def problems(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """What stops the app from being served safely in its mode, one plain sentence each (empty: fine)."""
    env = os.environ if environ is None else environ
    found = []
    if settings.auth_mode == "local" and settings.bind_host not in LOOPBACK_HOSTS:
        found.append(f"MEDCOT_AUTH_MODE=local has no login, so it only listens on this machine, but MEDCOT_HOST is "
                     f"{settings.bind_host}. To serve other machines set MEDCOT_AUTH_MODE=password and MEDCOT_USERS.")
    if settings.auth_mode == "password":
        try:
            if not parse_users(env.get("MEDCOT_USERS", "")):
                found.append("MEDCOT_AUTH_MODE=password needs accounts in MEDCOT_USERS, e.g. "
                             "alice:long-password,bob:another-one.")
        except ValueError as exc:
            found.append(str(exc))
    if settings.auth_mode == "space":
        if env.get("SYSTEM") != "spaces" or not env.get("SPACE_ID"):
            found.append("MEDCOT_AUTH_MODE=space only works on a Hugging Face Space: elsewhere Gradio replaces "
                         "Hugging Face sign-in with a local mock that would sign every visitor in as this machine's "
                         "Hub user. Use MEDCOT_AUTH_MODE=password (or local) here.")
        missing = [name for name in OAUTH_ENV if not env.get(name)]
        if missing:
            found.append(f"Sign-in is not enabled for this Space ({', '.join(missing)} unset): add `hf_oauth: true` "
                         "to the README front matter (see docs/DEPLOY.md).")
    return found


def blocked_paths(settings: Settings) -> list[str]:
    """Files no handler may ever hand out through Gradio: the database (and its snapshots), uploaded data, stored
    credentials."""
    home = settings.home
    hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    paths = [home / "runs.db", home / "runs.db-wal", home / "runs.db-shm", settings.uploads_dir,
             hf_home / "token", hf_home / "stored_tokens", Path.home() / ".netrc", PROJECT_DIR / ".git",
             PROJECT_DIR / ".env", home / ".env"]
    if settings.bucket_dir is not None:  # database snapshots and every kept file
        paths.append(settings.bucket_dir)
    if settings.database_url.startswith("sqlite:///"):
        db = Path(settings.database_url.split("///", 1)[1])
        paths += [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    return sorted({str(p.resolve()) for p in paths})


def cache_environment(settings: Settings) -> dict[str, str]:
    """Gradio's file caches inside this app's own data directory: two apps on one machine (each with its own
    data directory) would otherwise share /tmp/gradio, and one would serve the files the other handed out."""
    cache = settings.home / "gradio-cache"
    return {"GRADIO_TEMP_DIR": str(cache), "GRADIO_EXAMPLES_CACHE": str(cache / "examples")}


def queue_options(settings: Settings) -> dict[str, Any]:
    # api_open=False: the REST routes may not skip the queue (and so its size and concurrency limits).
    return {"max_size": settings.queue_max_size, "default_concurrency_limit": settings.concurrency_limit,
            "api_open": False}


def launch_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "server_name": settings.bind_host, "server_port": settings.port, "share": False, "show_error": True,
        "quiet": True, "prevent_thread_lock": True,  # app.py prints started_message, then blocks
        # Gradio refuses a larger body before storing it; the Dataset tab applies the same limit to what it keeps.
        "max_file_size": int(settings.max_upload_mb * 2**20),
        # Exports may be handed out by the handlers that make them (Gradio copies them into its cache first);
        # gate.HostingGate refuses direct fetches of anything in the data directory.
        "allowed_paths": [str(settings.exports_dir)], "blocked_paths": blocked_paths(settings),
        # Surfaces the app does not need: per-browser call history (it can record typed tokens), the
        # monitoring dashboard (its summary route has no login check), the MCP server, server-side rendering.
        "run_history": False, "enable_monitoring": False, "mcp_server": False, "ssr_mode": False,
        "footer_links": ["api", "settings"],
        # Gradio's extra "is localhost reachable" probe after start-up: one HEAD with a 3 s limit that fails the
        # launch ("localhost is not accessible") on a busy machine or behind an HTTP_PROXY. Launch has already
        # fetched its own startup-events route from the server by then, so the probe proves nothing more.
        # A private flag of the pinned gradio (blocks.py, Blocks.launch); it only switches off that probe.
        "_frontend": False,
    }
    if settings.auth_mode == "password":
        options["auth"] = password_auth()
        options["auth_message"] = "MedCoT Studio: sign in with the account the app's owner gave you."
    return options


def started_message(settings: Settings) -> str:
    """What the app prints once it serves, in place of Gradio's own lines (launched quiet: its "set share=True"
    hint would point at share links, which this app never opens; the README's access modes are the way)."""
    reach = {"local": "only this machine can reach it; to let others in, use MEDCOT_AUTH_MODE=password",
             "password": "anyone who can reach this address is asked to sign in (MEDCOT_USERS)",
             "space": "signing in with Hugging Face decides who may change things"}[settings.auth_mode]
    return (f"* Running on local URL:  http://{settings.bind_host}:{settings.port} ({settings.auth_mode} mode: "
            f"{reach}; see 'Access modes' in README.md)")

