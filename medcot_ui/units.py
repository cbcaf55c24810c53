"""Human-readable quantities for messages and tables."""

from __future__ import annotations


def human_size(n: float) -> str:
    """Bytes as '512 B', '3.4 MB', '1.2 GB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
