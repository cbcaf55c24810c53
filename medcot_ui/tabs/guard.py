"""The server-side permission check every mutating handler calls (hiding a button is not a check).

The caller is always derived on the server from what Gradio itself authenticated: in ``space`` mode the Hugging
Face login Gradio keeps in its signed session cookie, in ``password`` mode the user of Gradio's login cookie.
Nothing a client sends as an argument (a username, a token) is ever trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import gradio as gr

from medcot_ui.hosting.access import AccessDenied, Caller, allowed, caller_from_oauth, check
from medcot_ui.settings import get_settings
from medcot_ui.tabs import toast

log = logging.getLogger(__name__)


def _session(request: Any) -> Mapping[str, Any]:
    """The Starlette session of a gr.Request (empty when the app has no SessionMiddleware, i.e. not space mode)."""
    underlying = getattr(request, "request", None) or request
    scope = getattr(underlying, "scope", None)
    if isinstance(scope, dict):
        return scope.get("session") or {}
    return {}


def caller_of(request: gr.Request | None) -> Caller:
    if request is None:
        return Caller()
    if get_settings().auth_mode == "space":
        return caller_from_oauth(_session(request).get("oauth_info"))
    return Caller(username=getattr(request, "username", None))


def guard(request: gr.Request | None, action: str) -> Caller:
    """Return the caller, or raise a gr.Error the user sees when they may not do ``action``.

    The returned Caller carries the caller's own Hub token in space mode (``caller.token``): publish with
    ``access.publish_token(caller, typed_token)``, never with the server's HF_TOKEN.
    """
    caller = caller_of(request)
    try:
        check(caller, action)
    except AccessDenied as exc:
        log.warning("refused %s for %s", action, caller.username or "an anonymous caller")
        raise toast.error(str(exc), title="Not allowed", print_exception=False) from None
    return caller


def may(request: gr.Request | None, action: str) -> bool:
    """For showing or hiding controls and read-only views (the handlers still call guard)."""
    return allowed(caller_of(request), action)
