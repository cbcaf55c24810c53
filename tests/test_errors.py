"""One base error: every error worded for a person is a MedcotError, which the CLI and the UI show as is."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import gradio as gr
import pytest
from conftest import cli

from medcot_ui.errors import MedcotError
from medcot_ui.tabs.wiring import bound

ROOT = Path(__file__).resolve().parent.parent
# Raised for people to read: every class whose name says it refuses something.
ENDINGS = ("Error", "Refused", "Denied", "Rejected", "Unreachable")


def _error_classes() -> list[tuple[str, str]]:
    found = []
    for path in sorted([*(ROOT / "medcot_ui").rglob("*.py"), *(ROOT / "jobs").glob("*.py")]):
        if "versions" in path.parts:
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found += [(module, node.name) for node in ast.parse(path.read_text()).body
                  if isinstance(node, ast.ClassDef) and node.name.endswith(ENDINGS)]
    return found


def test_every_error_a_person_reads_is_a_medcot_error() -> None:
    classes = _error_classes()
    assert len(classes) >= 15  # the scan finds them (an empty scan would pass anything)
    loose = [f"{module}.{name}" for module, name in classes
             if not issubclass(getattr(importlib.import_module(module), name), MedcotError)]
    assert not loose, f"subclass MedcotError: {loose}"


def test_the_cli_prints_a_refused_action_as_one_sentence(home: Path) -> None:
    done = cli("resume", "999", check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: run 999 does not exist"


def test_a_tab_handler_that_raises_a_medcot_error_shows_its_message_in_a_toast() -> None:
    def start(tab: object, n: int) -> int:
        raise MedcotError(f"n: {n} is outside 1 to 5000")

    def stream(tab: object, n: int):  # streaming handlers keep streaming and are guarded too
        yield n
        raise MedcotError("batch_size: 0 is outside 1 to 256")

    with pytest.raises(gr.Error, match=r"n: 0 is outside 1 to 5000"):
        bound(start, object())(0)
    steps = bound(stream, object())(7)
    assert next(steps) == 7
    with pytest.raises(gr.Error, match="batch_size: 0"):
        next(steps)
