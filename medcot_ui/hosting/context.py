"""What every tab is built with: settings and the process-wide services (no Gradio here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medcot_ui.settings import Settings, get_settings


@dataclass
class AppContext:
    settings: Settings = field(default_factory=get_settings)
    # Process-wide services that tabs share (e.g. the Compare engine holding one copy of the base weights).
    services: dict[str, Any] = field(default_factory=dict)
