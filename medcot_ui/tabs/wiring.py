"""How a tab's module-level handlers reach its components: each handler takes the tab's holder first and returns
``{component: update}`` for what it changes (components it leaves out keep their value)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import MethodType
from typing import Any

import gradio as gr
from gradio.components import Component

from medcot_ui.errors import MedcotError
from medcot_ui.tabs.toast import error

Updates = dict[Component, Any]


def unchanged() -> Updates:
    """What a handler returns to change nothing: Gradio reads an empty dict as a value, this as "skip all"."""
    return gr.skip()


def bound(handler: Callable[..., Any], tab: object) -> Callable[..., Any]:
    """``handler`` with ``tab`` as its first argument.

    A bound method keeps the signature and type hints Gradio reads to inject ``gr.Request``, ``gr.Progress`` and
    ``gr.SelectData`` (``functools.partial`` hides the hints, so the request would arrive as a missing argument).
    A :class:`MedcotError` the handler lets through shows as an error toast with its message (never a bare "Error").
    """
    return MethodType(_toasting(handler), tab)


def _toasting(handler: Callable[..., Any]) -> Callable[..., Any]:
    # functools.wraps keeps the hints readable: Gradio follows __wrapped__ to the handler's signature and globals.
    # A generator handler needs a generator wrapper, or Gradio would not stream it.
    if inspect.isgeneratorfunction(handler):
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from handler(*args, **kwargs)
            except MedcotError as exc:
                raise error(str(exc), print_exception=False) from None
    else:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except MedcotError as exc:
                raise error(str(exc), print_exception=False) from None
    return functools.wraps(handler)(guarded)
