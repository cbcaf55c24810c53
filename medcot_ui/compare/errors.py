"""The one error a comparison raises: its message says why and what to do (the tab shows it as is)."""

from medcot_ui.errors import MedcotError


class CompareError(MedcotError, RuntimeError):
    """A comparison that cannot run; the message says why and what to do."""
