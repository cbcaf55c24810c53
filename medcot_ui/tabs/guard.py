"""The server-side permission check every mutating handler calls (hiding a button is not a check)."""

from __future__ import annotations

import gradio as gr

from medcot_ui.access import AccessDenied, Caller, check


def caller_of(request: gr.Request | None) -> Caller:
    username = getattr(request, "username", None) if request is not None else None
    return Caller(username=username)


def guard(request: gr.Request | None, action: str) -> Caller:
    """Return the caller, or raise a gr.Error the user sees when they may not do ``action``."""
    caller = caller_of(request)
    try:
        check(caller, action)
    except AccessDenied as exc:
        raise gr.Error(str(exc)) from None
    return caller
