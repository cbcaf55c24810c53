"""Reading values the browser sends back (a typed or stale dropdown value must not surface as a traceback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from medcot_ui.tabs import toast


def run_id_of(value: Any) -> int:
    """The run id a run dropdown holds, or a plain error naming the field."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise toast.error(f"Run: pick a run from the list ({value!r} is not one).") from None


def follow_selected_run(runs_ui: Any, dropdown: gr.Dropdown,
                        choices_for: Callable[[gr.Request], list[tuple[str, int]] | None]) -> None:
    """Preselect in ``dropdown`` the run selected in the Runs tab (``runs_ui``, a ``tabs.runs.RunsTab``), when it
    is one of this tab's choices. ``choices_for`` returns the caller's choices, or None when the caller may not
    see runs.
    """
    if runs_ui is None:
        return
    selected = runs_ui.selected_run

    def preselect(run_id: int | None, request: gr.Request) -> Any:
        choices = choices_for(request)
        if run_id is None or choices is None:
            return gr.skip()
        if run_id not in [v for _, v in choices]:
            return gr.update(choices=choices)
        return gr.update(choices=choices, value=run_id)

    selected.change(preselect, selected, dropdown, api_name=False)
