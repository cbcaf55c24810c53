"""What the gate reads from a ``POST /login`` before Gradio checks it: the account name, exactly as Gradio's own
form parsing reads it, and whether the browser signed in to that account before.

The name is read with Starlette's form parser, the one FastAPI hands Gradio's login route, so every body Gradio
accepts (urlencoded or multipart/form-data, a field given twice: the last one) is counted against the name it
will check; JSON, which Gradio does not accept today, is read too so that a Gradio that does is still counted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from http.cookies import CookieError, SimpleCookie
from typing import Any

from starlette.requests import Request

BROWSER_COOKIE = "medcot-signed-in-before"
BROWSER_COOKIE_DAYS = 30


async def login_username(scope: dict[str, Any], body: bytes) -> str:
    """The ``username`` field of a login body ("" when it has none or cannot be parsed)."""
    headers = {name.lower(): value for name, value in scope.get("headers") or ()}
    if headers.get(b"content-type", b"").split(b";", 1)[0].strip() == b"application/json":
        try:
            value = json.loads(body).get("username")
        except (ValueError, AttributeError):
            return ""
        return value if isinstance(value, str) else ""
    try:
        async with Request(scope, replay(body)).form() as form:
            value = form.get("username")
    except Exception:  # noqa: BLE001 -- malformed multipart: Gradio refuses it unchecked too (400 or 422)
        return ""
    return value if isinstance(value, str) else ""


class BrowserCookies:
    """Signs and checks the cookie a browser gets when it signs in, naming the account (HMAC with a key of this
    process: a restart asks every browser to sign in once more before it skips the account's wait)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _signature(self, browser: str, username: str) -> str:
        message = f"{browser}|{username.strip().lower()}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def known_browser(self, scope: dict[str, Any], username: str) -> str | None:
        """The id of the browser sending this request if it signed in to ``username`` before, else None."""
        cookies = SimpleCookie()
        for name, value in scope.get("headers") or ():
            if name == b"cookie":
                try:
                    cookies.load(value.decode("latin-1"))
                except CookieError:
                    continue
        browser, _, signature = (cookies[BROWSER_COOKIE].value if BROWSER_COOKIE in cookies else "").partition(".")
        if browser and hmac.compare_digest(signature, self._signature(browser, username)):
            return browser
        return None

    def set_cookie_header(self, username: str) -> tuple[bytes, bytes]:
        browser = secrets.token_urlsafe(12)
        value = f"{browser}.{self._signature(browser, username)}"
        return (b"set-cookie", f"{BROWSER_COOKIE}={value}; Max-Age={BROWSER_COOKIE_DAYS * 86400}; Path=/; "
                               "HttpOnly; SameSite=Strict".encode())


def replay(body: bytes) -> Any:
    """An ASGI ``receive`` that hands over an already read ``body`` once, then reports the disconnect."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
