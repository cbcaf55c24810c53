"""Reading the end of a log file without reading all of it (train.log grows to many MB on a long run)."""

from __future__ import annotations

from pathlib import Path

TAIL_BYTES = 64 * 1024  # more than enough for the last few dozen lines


def tail_lines(path: Path, lines: int) -> list[str] | None:
    """The last ``lines`` lines of ``path`` (decoded leniently), or None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - TAIL_BYTES))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return text.strip().splitlines()[-lines:]
