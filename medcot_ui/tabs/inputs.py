"""Reading values the browser sends back (a typed or stale dropdown value must not surface as a traceback)."""

from __future__ import annotations

from typing import Any

import gradio as gr


def run_id_of(value: Any) -> int:
    """The run id a run dropdown holds, or a plain error naming the field."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"Run: pick a run from the list ({value!r} is not one).") from None
