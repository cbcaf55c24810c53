"""ASGI middleware for the Gradio routes that run before any handler (and so before ``tabs.guard``).

* File route (``/gradio_api/file=...``): nothing inside the data directory is fetched directly. Files a handler
  returns (exports) are copied into Gradio's cache and served from there, so a guessed path to another user's
  export, the database or an upload is refused whatever the caller -- with Gradio's own answer for a file it
  does not serve, and, to a caller who is not signed in, with Gradio's own 401: where the data lives stays hidden.
* Upload route, in space mode: only allowed callers may put files on the Space. In password mode Gradio's own
  login check already refuses anonymous uploads.
* ``/gradio_api/cancel`` and ``/reset`` (Gradio checks no login there): refused to callers who are not signed in
  (password mode) or may not use the models (space mode), and a cancel must name a live event of its own session
  (Gradio would otherwise stop any stream of that session and function given only the session hash).
* ``/login`` (password mode): throttled per (client, account) and per account, the name read as Gradio reads it
  (:mod:`medcot_ui.hosting.throttle`, :mod:`medcot_ui.hosting.login_request`).
* The login page: Gradio embeds the app's whole API description in it; a caller who is not signed in gets none.

It sits inside Gradio's SessionMiddleware (it reads the same signed login as ``tabs.guard``) and inside its
compression middleware (it sees bodies as sent). Gradio's app is ``scope["app"]``: its login tokens, its queue and
its cache folder are read from there.
"""

from __future__ import annotations

import json
import math
import re
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

from medcot_ui.hosting.access import allowed, caller_from_oauth
from medcot_ui.hosting.login_request import BrowserCookies, login_username, replay
from medcot_ui.settings import get_settings
from medcot_ui.hosting.throttle import LoginThrottle, login_keys

Scope = dict[str, Any]
_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)
_NO_API_INFO = b'window.gradio_api_info = {"named_endpoints": {}, "unnamed_endpoints": {}};</script>'
_PAGES = {"", "/"}


class HostingGate:
    def __init__(self, app: Any):
        self.app = app
        self.logins = LoginThrottle()
        self.browsers = BrowserCookies()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", "").rstrip("/"), scope.get("method")
        if method == "POST" and path == "/login" and getattr(scope.get("app"), "auth", None) is not None:
            return await self._login(scope, receive, send)
        if method == "POST" and path in {"/gradio_api/cancel", "/gradio_api/reset"}:
            body = await _read_body(receive)
            if (refusal := _stop_refusal(scope, path, body)) is not None:
                return await _respond(send, *refusal)
            receive = replay(body)
        elif (refusal := _refusal(scope)) is not None:
            return await _respond(send, *refusal)
        if method in {"GET", "HEAD"} and path in _PAGES and _login_missing(scope):
            send = _without_api_info(send)
        await self.app(scope, receive, send)

    async def _login(self, scope: Scope, receive: Any, send: Any) -> None:
        body = await _read_body(receive)
        username = await login_username(scope, body)
        keys = login_keys((scope.get("client") or ("?",))[0], username, self.browsers.known_browser(scope, username))
        if (wait := self.logins.begin(keys)) > 0:
            seconds = math.ceil(wait)
            return await _respond(send, 429, {"detail": f"Too many sign-in attempts: try again in {seconds} s."},
                                  [(b"retry-after", str(seconds).encode())])

        async def note_outcome(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                self.logins.succeeded(keys)
                message = {**message, "headers": [*message.get("headers", []),
                                                  self.browsers.set_cookie_header(username)]}
            await send(message)

        await self.app(scope, replay(body), note_outcome)


def _refusal(scope: Scope) -> tuple[int, Any] | None:
    path, method = scope.get("path", ""), scope.get("method")
    if method in {"GET", "HEAD"} and ("/file=" in path or "/gradio_api/file/" in path):
        target = path.split("/file=", 1)[1] if "/file=" in path else path.split("/gradio_api/file/", 1)[1]
        # Not signed in: Gradio answers 401 for every path alike; signed in: its own words for a refused file.
        if not _login_missing(scope) and _inside_data_dir(target, scope):
            return 403, {"detail": f"File not allowed: {target}."}
    if (method == "POST" and path.rstrip("/").endswith("/upload") and get_settings().auth_mode == "space"
            and not allowed(caller_from_oauth((scope.get("session") or {}).get("oauth_info")), "upload")):
        return 403, "Sign in with an allowed Hugging Face account to upload files."
    return None


def _stop_refusal(scope: Scope, path: str, body: bytes) -> tuple[int, Any] | None:
    app = scope.get("app")
    if _login_missing(scope):  # what Gradio's own login check answers on every other route
        return 401, {"detail": {"error": "Not authenticated", "auth_message": app.get_blocks().auth_message}}
    if get_settings().auth_mode == "space" and not allowed(
            caller_from_oauth((scope.get("session") or {}).get("oauth_info")), "compare"):
        return 403, "Sign in with an allowed Hugging Face account to stop events."
    if path.endswith("/cancel"):
        try:
            request = json.loads(body)
            live = request["event_id"] in app.get_blocks()._queue.pending_event_ids_session.get(
                request["session_hash"], ())
        except (ValueError, KeyError, TypeError, AttributeError):  # malformed, or a Gradio without that queue
            live = False
        if not live:
            return 403, "No such running event in this session."
    return None


def _login_missing(scope: Scope) -> bool:
    """Whether Gradio asks for a login (password mode) and the request has none."""
    app = scope.get("app")
    if getattr(app, "auth", None) is None:
        return False
    cookies = SimpleCookie()
    for name, value in scope.get("headers") or ():
        if name == b"cookie":
            try:
                cookies.load(value.decode("latin-1"))
            except CookieError:  # a malformed header carries no login
                continue
    token = next((cookies[name].value for name in (f"access-token-{app.cookie_id}",
                                                   f"access-token-unsecure-{app.cookie_id}") if name in cookies), None)
    return app.tokens.get(token) is None


def _inside_data_dir(target: str, scope: Scope) -> bool:
    """Whether a file route's target lies in MEDCOT_HOME (Gradio's own cache excepted, wherever it is)."""
    try:
        resolved = (Path.cwd() / target).resolve()  # an absolute target replaces cwd
        cache = Path(scope["app"].uploaded_file_dir).resolve()
        return resolved.is_relative_to(get_settings().home) and not resolved.is_relative_to(cache)
    except (OSError, ValueError, KeyError, AttributeError):
        return True  # cannot tell: refuse


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Any, status: int, detail: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    text = isinstance(detail, str)
    # JSON exactly as Starlette renders Gradio's own refusals (compact), so ours cannot be told apart.
    body = detail.encode() if text else json.dumps(detail, ensure_ascii=False, separators=(",", ":")).encode()
    kind = b"text/plain; charset=utf-8" if text else b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _without_api_info(send: Any) -> Any:
    """``send`` for the login page: the page as Gradio renders it, less its API description."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def rewrite(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        page = b"".join(chunks)
        body = _API_INFO.sub(_NO_API_INFO, page, count=1)
        headers = start.get("headers", [])
        if body != page:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return rewrite
