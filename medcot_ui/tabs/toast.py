"""Error toasts: Gradio shows their text as typed, so a message written in markdown for the page (``*Export*``,
```` `HF_TOKEN` ````) loses its marks here."""

from __future__ import annotations

import re

import gradio as gr

MARKS = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|`")


def plain(text: str) -> str:
    """``text`` without markdown emphasis and code marks (underscores inside names like HF_TOKEN stay)."""
    return MARKS.sub("", text)


def error(message: str, title: str = "Error", **options: object) -> gr.Error:
    """The gr.Error to raise for ``message``, as plain text."""
    return gr.Error(plain(message), title=title, **options)
