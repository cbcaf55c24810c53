"""Runs tab (being built)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from medcot_ui.context import AppContext


def build(ctx: AppContext) -> dict[str, Any]:
    gr.Markdown("Not built yet.")
    return {}


def wire(ui: dict[str, Any], *others: Any) -> None:
    return None
