"""Human-readable quantities for messages and tables."""

from __future__ import annotations

import time


def when(ts: float | None, seconds: bool = False, missing: str = "-") -> str:
    """A Unix time as local 'YYYY-MM-DD HH:MM' (':SS' with ``seconds``); ``missing`` when there is none."""
    return time.strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""), time.localtime(ts)) if ts else missing


def duration(seconds: float | None, missing: str = "-") -> str:
    """'42 s', '3 min 07 s', '2 h 05 min'; ``missing`` when unknown."""
    if seconds is None or seconds < 0:
        return missing
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def rough_duration(seconds: float) -> str:
    """A planned duration, rounded as an estimate deserves: '0.21 s', '8 s', '2 min', '1.5 h', '3 days'."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def shorten(text: str | None, n: int = 80) -> str:
    """One line of at most ``n`` characters (whitespace collapsed, an ellipsis where it was cut)."""
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def human_size(n: float) -> str:
    """Bytes as '512 B', '3.4 MB', '1.2 GB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
