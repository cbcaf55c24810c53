"""Optional Weights & Biases reporting: what it needs on this machine, checked before training starts.

The app's own SQLite metrics are always recorded and drive the dashboard; W&B is an extra. Its key is only
ever read from the environment (WANDB_API_KEY, or the .netrc that `wandb login` writes), never from a form or
a config file.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from medcot_ui.training.config import RunConfig


def wandb_installed() -> bool:
    return importlib.util.find_spec("wandb") is not None


def wandb_key_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def tracking_problems(config: RunConfig) -> list[str]:
    """What would make W&B reporting fail on this machine, as field-named error lines (empty when fine)."""
    t = config.tracking
    if t.report_to != "wandb":
        return []
    if not wandb_installed():
        return ["tracking.report_to: Weights & Biases reporting needs the wandb package, which is not installed "
                "here: run `pip install wandb`, or choose 'none' (the app's own metrics are always kept)"]
    if t.wandb_mode == "online" and not wandb_key_available():
        return ["tracking.wandb_mode: online mode needs WANDB_API_KEY in the app's environment (or `wandb login`); "
                "choose 'offline' to log locally without a network"]
    return []
