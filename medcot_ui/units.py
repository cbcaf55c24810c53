"""Human-readable quantities for messages and tables."""

from __future__ import annotations


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
