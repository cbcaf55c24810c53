"""The server-side permission check every mutating handler calls (hiding a button is not a check).

The caller is always derived on the server from what Gradio itself authenticated: in ``space`` mode the Hugging
Face login Gradio keeps in its signed session cookie, in ``password`` mode the user of Gradio's login cookie.
Nothing a client sends as an argument (a username, a token) is ever trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from medcot_ui.hosting.access import AccessDenied, Caller, allowed, caller_from_oauth, check
from medcot_ui.hosting.settings import get_settings

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
        raise gr.Error(str(exc), title="Not allowed", print_exception=False) from None
    return caller


def may(request: gr.Request | None, action: str) -> bool:
    """For showing or hiding controls and read-only views (the handlers still call guard)."""
    return allowed(caller_of(request), action)


class HostingGate:
    """ASGI middleware for the two Gradio routes that run before any handler (and so before ``guard``).

    * File route (``/gradio_api/file=...``): nothing inside the data directory is fetched directly. Files a
      handler returns (exports) are copied into Gradio's cache and served from there, so a guessed path to
      another user's export, the database or an upload is refused whatever the caller.
    * Upload route, in space mode: only allowed callers may put files on the Space (an anonymous visitor could
      otherwise store files there). In password mode Gradio's own login check already refuses anonymous uploads.

    It sits inside Gradio's SessionMiddleware, so it reads the same signed login as ``caller_of``.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                body = refusal.encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _refusal(scope: dict[str, Any]) -> str | None:
        path, method = scope.get("path", ""), scope.get("method")
        if method in {"GET", "HEAD"} and ("/file=" in path or "/gradio_api/file/" in path):
            target = path.split("/file=", 1)[1] if "/file=" in path else path.split("/gradio_api/file/", 1)[1]
            if _inside_data_dir(target):
                return "File not allowed."
        if (method == "POST" and path.rstrip("/").endswith("/upload") and get_settings().auth_mode == "space"
                and not allowed(caller_from_oauth((scope.get("session") or {}).get("oauth_info")), "upload")):
            return "Sign in with an allowed Hugging Face account to upload files."
        return None


def _inside_data_dir(target: str) -> bool:
    """Whether a file route's target lies in MEDCOT_HOME (Gradio's own cache excepted, wherever it is)."""
    try:
        resolved = (Path.cwd() / target).resolve()  # an absolute target replaces cwd
        cache = Path(gr.utils.get_upload_folder()).resolve()
        return resolved.is_relative_to(get_settings().home) and not resolved.is_relative_to(cache)
    except (OSError, ValueError):
        return True  # cannot tell: refuse
