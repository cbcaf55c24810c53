"""Paths and switches read from the environment, in one place.

Everything is read at call time (not import time) so tests and child processes can point the app at a
different data directory by setting ``MEDCOT_HOME`` before calling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEMO_DATA_FILE = PROJECT_DIR / "data" / "demo" / "medical_demo.jsonl"
# The model id that means "the tiny model built locally from the demo data" (works offline).
DEMO_MODEL_ID = "demo:tiny-llama"


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    host: str
    port: int
    start_worker: bool
    lease_seconds: float
    poll_seconds: float

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def demo_model_dir(self) -> Path:
        return self.models_dir / "demo-tiny-llama"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"


def get_settings() -> Settings:
    home = Path(os.environ.get("MEDCOT_HOME") or PROJECT_DIR).expanduser().resolve()
    return Settings(
        home=home,
        database_url=os.environ.get("MEDCOT_DATABASE_URL") or f"sqlite:///{home / 'runs.db'}",
        host=os.environ.get("MEDCOT_HOST", "127.0.0.1"),
        port=int(os.environ.get("MEDCOT_PORT", "7860")),
        start_worker=not _flag("MEDCOT_NO_WORKER"),
        lease_seconds=float(os.environ.get("MEDCOT_LEASE_SECONDS", "30")),
        poll_seconds=float(os.environ.get("MEDCOT_POLL_SECONDS", "1.0")),
    )
