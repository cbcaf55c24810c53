"""Who may do what. Pure logic (no Gradio): the tabs turn a request into a Caller and ask :func:`check`.

Modes (``MEDCOT_AUTH_MODE``, see docs/DEPLOY.md):

* ``local`` (default off a Space): the app listens on 127.0.0.1 only and whoever reaches it may do everything.
* ``password``: Gradio's login page with the accounts in ``MEDCOT_USERS``. Every signed-in user may look;
  when ``MEDCOT_ALLOWED_USERS`` is set only those users may train, cancel, resume, delete, upload and publish.
* ``space`` (default on a Space): Hugging Face OAuth. Only users in ``MEDCOT_ALLOWED_USERS`` or members of an
  organisation in ``MEDCOT_ALLOWED_ORGS`` (by default: the Space's owner) may change anything or see the runs;
  everyone else sees the demo data and, when ``MEDCOT_PUBLIC_CHAT=1``, may chat with the models.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medcot_ui.errors import MedcotError, SettingsError
from medcot_ui.settings import Settings, get_settings

# Actions that change state or spend the GPU: every handler doing one of these must call check() first.
MUTATING_ACTIONS = ("train", "cancel", "resume", "delete", "publish", "upload", "compare")
# Reading what allowed users made (their runs, their uploaded data). The bundled demo data is always public.
VIEW_ACTIONS = ("view_runs", "view_uploads")
ACTIONS = MUTATING_ACTIONS + VIEW_ACTIONS

# How each action reads in a refusal ("Sign in with Hugging Face to <verb>.").
_VERBS = {"train": "start training", "cancel": "cancel runs", "resume": "resume runs",
          "delete": "delete or restore runs", "publish": "publish models", "upload": "upload data",
          "compare": "chat with the models", "view_runs": "see the runs", "view_uploads": "see uploaded data"}

# Words that start a part of an event's api_name ("launch_training", "delete_run") and so name its action. The app
# uses this to put GPU events on one concurrency lane, and the hosting tests to find every mutating endpoint.
ACTION_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("publish", ("publish", "export")),
    ("upload", ("upload",)),
    ("delete", ("delete", "remove", "restore", "undo")),
    ("resume", ("resume",)),
    ("cancel", ("cancel",)),
    ("compare", ("compare", "chat", "ask", "generate")),
    ("train", ("train", "launch", "enqueue")),
)


class AccessDenied(MedcotError, PermissionError):
    """The caller may not do this; the message says why in plain words."""


@dataclass(frozen=True)
class Caller:
    username: str | None = None
    orgs: tuple[str, ...] = ()
    token: str | None = field(default=None, repr=False)  # the caller's own Hub token; never logged or shown

    @property
    def signed_in(self) -> bool:
        return bool(self.username)


def caller_from_oauth(oauth_info: Mapping[str, Any] | None, now: float | None = None) -> Caller:
    """The caller described by the OAuth login Gradio keeps in its signed session cookie.

    ``oauth_info`` is ``request.session["oauth_info"]`` as gradio/oauth.py stores it after the Hugging Face
    callback: ``access_token``, ``expires_at`` and ``userinfo`` (``preferred_username``, and ``orgs`` -- the
    organisations the user let the Space see). An expired login counts as signed out, as in Gradio.
    """
    if not oauth_info:
        return Caller()
    expires_at = oauth_info.get("expires_at")
    if expires_at is not None and float(expires_at) < (time.time() if now is None else now):
        return Caller()
    userinfo = oauth_info.get("userinfo") or {}
    username = userinfo.get("preferred_username")
    if not username:
        return Caller()
    orgs = tuple(str(o.get("preferred_username") or o.get("name") or "").lower()
                 for o in userinfo.get("orgs") or () if isinstance(o, Mapping))
    return Caller(username=str(username), orgs=tuple(o for o in orgs if o), token=oauth_info.get("access_token"))


def action_for_endpoint(api_name: str | None) -> str | None:
    """The mutating action an event performs, judged by its api_name (None: a read-only event)."""
    tokens = re.split(r"[^a-z0-9]+", (api_name or "").lower())
    for action, words in ACTION_WORDS:
        if any(token.startswith(word) for token in tokens for word in words):
            return action
    return None


def _space_allow_lists(settings: Settings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Users and organisations allowed on a Space; with no list configured, the Space's owner (user or org)."""
    if settings.allowed_users or settings.allowed_orgs:
        return settings.allowed_users, settings.allowed_orgs
    owner = (os.environ.get("SPACE_AUTHOR_NAME") or "").strip().lower()
    return ((owner,), (owner,)) if owner else ((), ())


def _on_allow_list(caller: Caller, users: tuple[str, ...], orgs: tuple[str, ...]) -> bool:
    name = (caller.username or "").lower()
    return name in users or any(org in orgs for org in caller.orgs)


def check(caller: Caller, action: str, settings: Settings | None = None) -> None:
    """Raise AccessDenied unless ``caller`` may perform ``action`` in the configured mode."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    settings = settings or get_settings()
    mode, verb = settings.auth_mode, _VERBS[action]
    if mode == "local":
        return
    if action == "compare" and settings.public_chat and (mode == "space" or caller.signed_in):
        return  # the owner chose to let everyone chat (MEDCOT_PUBLIC_CHAT=1)
    if mode == "password":
        if not caller.signed_in:
            raise AccessDenied(f"Sign in to {verb}.")
        if action in VIEW_ACTIONS or not settings.allowed_users:
            return
        if (caller.username or "").lower() not in settings.allowed_users:
            raise AccessDenied(f"You are signed in as {caller.username}, who may look but not {verb}: ask the "
                               "app's owner to add you to MEDCOT_ALLOWED_USERS.")
        return
    if mode == "space":
        if not caller.signed_in:
            raise AccessDenied(f"Sign in with Hugging Face to {verb}. Without signing in you can look at the demo "
                               "data" + (" and chat with the models." if settings.public_chat else "."))
        users, orgs = _space_allow_lists(settings)
        if not _on_allow_list(caller, users, orgs):
            raise AccessDenied(f"You are signed in as {caller.username}, who is not on this Space's allow-list, so "
                               f"you cannot {verb}. Ask the Space's owner to add you (MEDCOT_ALLOWED_USERS) or "
                               "your organisation (MEDCOT_ALLOWED_ORGS).")
        return
    raise AccessDenied(f"Unknown access mode {mode!r}: nothing is allowed.")


def allowed(caller: Caller, action: str, settings: Settings | None = None) -> bool:
    """Whether ``check`` would pass (for showing or hiding controls; hiding is never the check itself)."""
    try:
        check(caller, action, settings)
    except AccessDenied:
        return False
    return True


def publish_token(caller: Caller, typed_token: str | None = None, settings: Settings | None = None) -> str:
    """The Hub token a publish must use: the caller's own, never the server's.

    On a Space that is the caller's OAuth token (the Space's owner's HF_TOKEN would let anyone publish as the
    owner). With passwords it is a token the caller types. Locally the person at the machine owns the machine,
    so their saved Hub token (``HF_TOKEN`` / ``hf auth login``) is theirs to use.
    """
    settings = settings or get_settings()
    typed = (typed_token or "").strip() or None
    if settings.auth_mode == "space":
        if not caller.token:
            raise AccessDenied("Sign in with Hugging Face to publish: the model is published to your own account "
                               "with your own sign-in, never with the Space's token.")
        return caller.token
    if typed:
        return typed
    if settings.auth_mode == "password":
        raise AccessDenied("Paste your own Hugging Face token (with write access) to publish: the server's token "
                           "is never used for other people's uploads.")
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise AccessDenied("No Hugging Face token: paste one (with write access), set HF_TOKEN, or run "
                           "`hf auth login`.")
    return token


# ---- password mode -----------------------------------------------------------------------------------------

def parse_users(raw: str) -> dict[str, str]:
    """``alice:pw1,bob:pw2`` (commas or new lines between accounts) -> {user: password}.

    Errors name the entry by position, never by its text: the text holds a password.
    """
    users: dict[str, str] = {}
    entries = [e.strip() for e in raw.replace("\n", ",").split(",")]
    for i, entry in enumerate((e for e in entries if e), start=1):
        name, sep, password = entry.partition(":")
        if not sep or not name.strip() or not password:
            raise SettingsError(f"MEDCOT_USERS entry {i}: expected user:password (the password cannot be empty or "
                             "hold a comma)")
        users[name.strip().lower()] = password
    return users


def password_auth(raw: str | None = None) -> Callable[[str, str], bool]:
    """Gradio's ``auth=`` callable for password mode: compares in constant time, never logs a password."""
    users = parse_users(os.environ.get("MEDCOT_USERS", "") if raw is None else raw)
    if not users:
        raise SettingsError("MEDCOT_AUTH_MODE=password needs at least one account in MEDCOT_USERS "
                         "(e.g. alice:long-password,bob:another-one)")

    def authenticate(username: str, password: str) -> bool:
        expected = users.get((username or "").strip().lower())
        # Compare against something even for unknown users, so timing does not reveal who has an account.
        ok = hmac.compare_digest((expected or "\0").encode(), (password or "").encode())
        return expected is not None and ok

    return authenticate
