"""How a tab's module-level handlers reach its components: each handler takes the tab's holder first and returns
``{component: update}`` for what it changes (components it leaves out keep their value)."""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Any

import gradio as gr
from gradio.components import Component

Updates = dict[Component, Any]


def unchanged() -> Updates:
    """What a handler returns to change nothing: Gradio reads an empty dict as a value, this as "skip all"."""
    return gr.skip()


def bound(handler: Callable[..., Any], tab: object) -> Callable[..., Any]:
    """``handler`` with ``tab`` as its first argument.

    A bound method keeps the signature and type hints Gradio reads to inject ``gr.Request``, ``gr.Progress`` and
    ``gr.SelectData`` (``functools.partial`` hides the hints, so the request would arrive as a missing argument).
    """
    return MethodType(handler, tab)
