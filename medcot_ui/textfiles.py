"""Reading the end of a log file without reading all of it (train.log grows to many MB on a long run)."""

from __future__ import annotations

import re
from pathlib import Path

TAIL_BYTES = 64 * 1024  # more than enough for the last few dozen lines
# A tqdm progress bar redraw, e.g. " 40%|████      | 12/30 [00:04<00:06,  2.9it/s]" (each redraw is a line).
PROGRESS_BAR = re.compile(r"\d+%\|[^|]*\|\s*\d+/\d+")


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


def without_progress_bars(lines: list[str]) -> list[str]:
    """Log lines for a person to read: progress-bar redraws (and the blank lines between them) dropped; the Runs
    tab draws its own progress."""
    return [line for line in lines if line.strip() and not PROGRESS_BAR.search(line)]
