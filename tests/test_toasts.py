"""An error toast reads as plain text: Gradio shows its text as typed, so markdown marks would show literally."""

from __future__ import annotations

from medcot_ui.tabs.toast import error, plain


def test_a_toast_drops_markdown_marks_but_keeps_names_with_underscores():
    text = "No token: set **HF_TOKEN** or use `hf auth login`; *Export locally* works offline (snake_case kept)."
    assert plain(text) == "No token: set HF_TOKEN or use hf auth login; Export locally works offline (snake_case kept)."
    raised = error(text, title="No token")
    assert raised.message == plain(text) and raised.title == "No token"
