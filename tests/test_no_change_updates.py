"""A handler with nothing to change (no run picked yet, no evaluation chosen) changes nothing: the page shows no
"didn't return enough output values" error and the server logs no traceback. Each case goes through Gradio's own
postprocessing of the real page's event, as a browser's call would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

CASES = {  # handler: the arguments after the tab holder that mean "nothing picked yet"
    ("compare", "on_sample"): (None, None),
    ("evaluate", "tick"): (None, None),
    ("evaluate", "show_item"): (None, 1, "", None),
    ("evaluate", "signed_in_rater"): (None,),  # not signed in: the typed name stays
}


@pytest.mark.parametrize("module, handler", list(CASES), ids=[".".join(case) for case in CASES])
def test_a_handler_with_nothing_to_change_leaves_every_output_as_it_was(home: Path, module: str,
                                                                        handler: str) -> None:
    import importlib
    import inspect

    from medcot_ui.hosting.context import AppContext
    from medcot_ui.tabs.layout import build_app

    demo = build_app(AppContext())
    function = getattr(importlib.import_module(f"medcot_ui.tabs.{module}"), handler)
    # Every handler reaches Gradio as a method bound to its tab, wrapped for error toasts: unwrap both.
    events = [fn for fn in demo.fns.values()
              if hasattr(fn.fn, "__func__") and inspect.unwrap(fn.fn.__func__) is function]
    assert events, f"{module}.{handler} is wired to no event"
    for event in events:
        result = event.fn(*CASES[(module, handler)])
        outputs: list[Any] = asyncio.run(demo.postprocess_data(event, result, None))
        assert len(outputs) == len(event.outputs)
        assert all(out == {"__type__": "update"} for out in outputs), outputs  # "keep as it is", each one


def test_a_metric_the_menu_no_longer_lists_reaches_its_handler_instead_of_failing_the_poll(home: Path) -> None:
    """The "More metrics" value a page still holds from the run it showed before (a key this run's menu lacks) goes
    to draw_more, which picks a key the run has. Gradio's own choices check failed the Runs poll it rides on
    instead, and the page stopped updating (a cancelled run stayed 'running' on screen)."""
    from medcot_ui.hosting.context import AppContext
    from medcot_ui.tabs.layout import build_app

    demo = build_app(AppContext())
    (menu,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "run-more-metric"]
    assert menu.preprocess("entropy") == "entropy"
