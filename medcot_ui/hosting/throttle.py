"""Sign-in throttling for password mode: after a few failed sign-ins, each further try waits longer.

A try counts against (client address, account) and against the account alone, so neither one client nor many
clients guessing one account get more than a few free tries. Nothing is counted per address alone: behind a proxy
that hides client addresses every visitor has the same one, and one guesser would lock every account. A browser
that has signed in to the account before (it shows a cookie the gate signed, :mod:`login_request`) counts
against itself only, so a guesser who keeps the account waiting does not lock its owner out. Every try counts
as a failure until it is known to have succeeded: a burst of simultaneous tries cannot all slip through before
the first answer arrives.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

FREE_FAILURES = 5          # failed tries per key before waiting starts
FIRST_WAIT_S = 1.0         # then 1 s, 2 s, 4 s ... between tries
LONGEST_WAIT_S = 300.0
FORGET_AFTER_S = 900.0     # a key with no failure for this long starts afresh


def login_keys(client: str | None, username: str | None, known_browser: str | None = None) -> tuple[str, ...]:
    """What a sign-in try is counted against (the name as the password check reads it: trimmed, lower case);
    ``known_browser``: the id of a browser that signed in to this account before, if the try carries one."""
    name = (username or "").strip().lower()
    if known_browser:
        return (f"browser:{known_browser}|{name}",)
    return (f"client:{client or '?'}|{name}", f"user:{name}")


@dataclass
class LoginThrottle:
    free_failures: int = FREE_FAILURES
    first_wait_s: float = FIRST_WAIT_S
    longest_wait_s: float = LONGEST_WAIT_S
    forget_after_s: float = FORGET_AFTER_S
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (count, time of the last)

    def _wait(self, key: str, now: float) -> float:
        count, last = self._failures.get(key, (0, -math.inf))
        if count < self.free_failures or now - last > self.forget_after_s:
            return 0.0
        wait = min(self.longest_wait_s, self.first_wait_s * 2 ** (count - self.free_failures))
        return max(0.0, last + wait - now)

    def begin(self, keys: tuple[str, ...], now: float | None = None) -> float:
        """Seconds the caller must still wait (the try is refused unchecked), or 0.0: go ahead, the try is
        counted as failed until :meth:`succeeded` says otherwise."""
        now = time.monotonic() if now is None else now
        wait = max((self._wait(key, now) for key in keys), default=0.0)
        if wait > 0:
            return wait
        self._forget_old(now)
        for key in keys:
            self._failures[key] = (self._failures.get(key, (0, now))[0] + 1, now)
        return 0.0

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _forget_old(self, now: float) -> None:
        # Bounded memory whatever names a guesser tries.
        for key in [k for k, (_, last) in self._failures.items() if now - last > self.forget_after_s]:
            del self._failures[key]
