"""Hosting tab: which storage mode is on, where everything lives, when the last snapshot was written.

Layout and wiring only; the words come from ``medcot_ui.hosting.storage_status``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from medcot_ui.hosting import storage_status
from medcot_ui.hosting.context import AppContext
from medcot_ui.tabs.wiring import Updates, bound


@dataclass
class HostingTab:
    ctx: AppContext
    view: gr.Markdown
    refresh: gr.Button


def build(ctx: AppContext) -> HostingTab:
    view = gr.Markdown(storage_status.hosting_view(ctx.settings), elem_id="hosting-view")
    refresh = gr.Button("Refresh", size="sm")
    return HostingTab(ctx, view, refresh)


def show(ui: HostingTab) -> Updates:
    return {ui.view: storage_status.hosting_view(ui.ctx.settings)}


def wire(ui: HostingTab, tab: gr.Tab) -> None:
    # Read the mount only when someone looks: on select and on Refresh, never on a timer.
    for trigger in (ui.refresh.click, tab.select):
        trigger(bound(show, ui), None, ui.view, show_progress="hidden", api_name=False)
