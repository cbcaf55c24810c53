"""The base of every error a person is meant to read: the CLI and the UI catch :class:`MedcotError` and show its
message as is (no traceback), so each subclass's message names the field, the row or the line at fault.

Errors that several packages raise live here (a foundation imports nothing of ours, so no module needs another
one's internals just to name the error: data/hub.py and data/load.py no longer import each other). An error that
one package alone raises stays beside the code that raises it, and subclasses :class:`MedcotError`.
"""

from __future__ import annotations


class MedcotError(Exception):
    """A refused action or bad input, worded for the person who caused it."""


class DataError(MedcotError, ValueError):
    """Bad training data; the message names the file line, row or column.

    ``problems`` lists every problem found (the message shows the first few), so a person can fix them all at once.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


class SettingsError(MedcotError, ValueError):
    """An environment variable the app cannot use; the message names the variable (never a secret's value)."""
