"""llama.cpp's GGUF tools are built on first use, not at install time.

Building llama-cpp-python from source takes 4 to 13 minutes; doing it in ``make install`` made a newcomer's first
``make run`` wait for an optional export. So ``make run`` skips it, and the first GGUF export runs
``scripts/install-gguf.sh`` (the same script ``make test`` and the Docker image run) with its compiler steps
turned into the export's progress bar. Where the tools cannot be built (no compiler), the GGUF choice is not
offered and says why.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from medcot_ui.redact import child_env, scrub
from medcot_ui.publish import gguf
from medcot_ui.units import duration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-gguf.sh"
FIRST_USE_NOTE = ("llama.cpp's GGUF tools are not built on this machine yet: the first GGUF export builds them "
                  "(once, 4 to 13 minutes with a progress bar), then exports.")
# A compiler step as pip -v prints it: ninja's "[12/98] Building ..." or make's "[ 45%] Building ...".
_STEP = re.compile(r"^\s*\[\s*(?:(\d+)/(\d+)|(\d+)%)\]")
_building = threading.Lock()  # one build per app; a second export waits for it, then finds the tools

ProgressFn = Callable[[float, str], None]


def missing_build_tools() -> str | None:
    """Why this machine cannot build the tools (no script, no C/C++ compiler), or None when it can."""
    if not SCRIPT.is_file():
        return f"{SCRIPT} is missing"
    missing = [name for name in ("cc", "c++") if shutil.which(name) is None]
    return f"this machine has no {' or '.join(missing)} compiler to build them" if missing else None


def offer() -> gguf.Availability:
    """Whether the GGUF choice is offered; its reason is the note shown under the choices (why it is off, or
    that the first export builds the tools)."""
    installed = gguf.availability()
    if installed.ok:
        return installed
    missing = missing_build_tools()
    if missing is None:
        return gguf.Availability(True, FIRST_USE_NOTE)
    return gguf.Availability(False, f"{installed.reason} It cannot be built here: {missing}.")


def step_fraction(line: str) -> float | None:
    """How far the compile is, from one line of its output (None for a line that is not a compiler step)."""
    m = _STEP.match(line)
    if m is None:
        return None
    done, total, percent = m.groups()
    return int(percent) / 100 if percent else int(done) / max(int(total), 1)


def ensure(progress: ProgressFn, log_file: Path) -> None:
    """Build the tools unless they are installed; raises GGUFError with the build's last words on failure."""
    if gguf.availability().ok:
        return
    with _building:
        if gguf.availability().ok:  # built by the export we waited for
            return
        if (missing := missing_build_tools()) is not None:
            raise gguf.GGUFError(f"building llama.cpp's GGUF tools: {missing}")
        _run_script(progress, log_file)
        importlib.invalidate_caches()  # llama_cpp was installed after this process looked for it
    if not (now := gguf.availability()).ok:
        raise gguf.GGUFError(f"building llama.cpp's GGUF tools: the build finished but {now.reason}")


def _run_script(progress: ProgressFn, log_file: Path) -> None:
    started = time.monotonic()
    label = "Building llama.cpp's GGUF tools (once for this machine, 4 to 13 minutes)"
    progress(0.0, label)
    cmd = ["bash", str(SCRIPT), sys.executable]
    tail: list[str] = []
    with open(log_file, "a", encoding="utf-8") as log, \
            subprocess.Popen(cmd, env=child_env(MEDCOT_GGUF_PROGRESS="1"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) as proc:  # no token in its environment
        log.write("$ scripts/install-gguf.sh\n")
        for line in proc.stdout or ():
            log.write(line)
            tail = (tail + [line.rstrip()])[-6:]
            if (fraction := step_fraction(line)) is not None:
                progress(fraction, f"{label}: compiling, {fraction:.0%} after "
                                   f"{duration(time.monotonic() - started)}")
    if proc.returncode != 0:
        raise gguf.GGUFError(f"building llama.cpp's GGUF tools (exit {proc.returncode}; the full output is in "
                             f"{log_file.name}): {scrub(chr(10).join(tail)) or 'no output'}")
