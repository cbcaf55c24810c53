"""Paths and switches read from the environment, in one place.

Everything is read at call time (not import time) so tests and child processes can point the app at a
different data directory by setting ``MEDCOT_HOME`` before calling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medcot_ui.errors import SettingsError

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEMO_DATA_FILE = PROJECT_DIR / "data" / "demo" / "medical_demo.jsonl"
# The model id that means "the tiny model built locally from the demo data" (works offline).
DEMO_MODEL_ID = "demo:tiny-llama"


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# ---- hosting: access modes, allow-lists, persistent storage (see docs/DEPLOY.md) -------------------------

AUTH_MODES = ("local", "password", "space")
# On a Hugging Face Space, a Storage Bucket attached as a volume is mounted here (docs/DEPLOY.md).
SPACE_BUCKET_MOUNT = Path("/data")
# File systems that vanish with the container or the machine: data kept there does not survive a restart.
_VOLATILE_FS = {"tmpfs", "ramfs", "overlay", "aufs", "squashfs"}


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _names(name: str) -> tuple[str, ...]:
    """A comma/space separated list of Hub names from the environment, lower-cased (Hub names ignore case)."""
    raw = os.environ.get(name, "")
    return tuple(dict.fromkeys(p.strip().lower() for p in raw.replace(",", " ").split() if p.strip()))


def _mount_of(path: Path, mounts_text: str) -> tuple[str, str]:
    """(mount point, file system type) of the deepest mount holding ``path``, from /proc/self/mounts text."""
    best = ("/", "")
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
            best = (point, fields[2])
    return best


def storage_is_persistent(home: Path, on_space: bool, in_container: bool, mounts_text: str | None = None) -> bool:
    """Whether ``home`` survives a restart of the Space / container.

    On a laptop or workstation the disk persists. In a container, only a mounted volume does (the image's own
    layer is thrown away), so ``home`` must live on a mount other than the root that is not a RAM file system.
    On a Space only the bucket mount at /data survives, and it is no disk for a live database: there the data
    directory stays on local disk and bucket snapshots (storage_mode) keep it.
    """
    if not (on_space or in_container):
        return True
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/self/mounts").read_text()
        except OSError:
            return False  # cannot tell: say so rather than promise
    point, fstype = _mount_of(home, mounts_text)
    if on_space and not (home == SPACE_BUCKET_MOUNT or SPACE_BUCKET_MOUNT in home.parents):
        return False
    return point != "/" and fstype not in _VOLATILE_FS


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    port: int
    start_worker: bool
    lease_seconds: float
    poll_seconds: float
    undo_seconds: float = 3600.0  # how long a deleted run can be restored before its files are removed
    # Hosting (all defaulted, so code that builds Settings by hand keeps working).
    auth_mode: str = "local"
    bind_host: str = "127.0.0.1"
    allowed_users: tuple[str, ...] = ()
    allowed_orgs: tuple[str, ...] = ()
    public_chat: bool = False
    space_id: str | None = None
    auto_resume: bool = False
    max_upload_mb: float = 200.0  # the same variable and default as uploads.UploadLimits
    queue_max_size: int = 32
    concurrency_limit: int = 4
    gpu_concurrency: int = 1
    checked_datasets: int = 4  # checked datasets the Dataset tab keeps in memory for all sessions together
    # A Storage Bucket mounted as a volume (not a POSIX disk): snapshots and finished files go there, never the
    # live database. None: no bucket (see storage_mode).
    bucket_dir: Path | None = None
    snapshot_minutes: float = 5.0  # while work runs, a snapshot at least this often

    @property
    def storage_mode(self) -> str:
        """``postgresql``, ``bucket`` (SQLite on local disk, snapshots on the mount) or ``local`` (disk only)."""
        if self.database_url.startswith("postgresql"):
            return "postgresql"
        if self.bucket_dir is not None and not _inside(self.home, self.bucket_dir):
            return "bucket"
        return "local"

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self.database_url.split("///", 1)[1]) if self.database_url.startswith("sqlite:///") else None

    @property
    def on_space(self) -> bool:
        return self.space_id is not None

    @property
    def persistent_storage(self) -> bool:
        """Will the data directory survive a restart? Worked out when asked (the start-up banner), not in every
        get_settings(): that runs often (every tab event), and this may read the mount table."""
        if os.environ.get("MEDCOT_PERSISTENT") not in (None, ""):
            return _flag("MEDCOT_PERSISTENT")
        return storage_is_persistent(self.home, self.on_space, _flag("MEDCOT_CONTAINER"))

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

    def run_exports_dir(self, run_id: int) -> Path:
        return self.exports_dir / f"run-{run_id}"


def data_home() -> Path:
    return Path(os.environ.get("MEDCOT_HOME") or PROJECT_DIR).expanduser().resolve()


def database_url() -> str:
    """The run store's URL alone: every database call needs it, and none needs the rest of the settings."""
    return os.environ.get("MEDCOT_DATABASE_URL") or f"sqlite:///{data_home() / 'runs.db'}"


def get_settings() -> Settings:
    return Settings(
        home=data_home(),
        database_url=database_url(),
        port=int(os.environ.get("MEDCOT_PORT", "7860")),
        start_worker=not _flag("MEDCOT_NO_WORKER"),
        lease_seconds=float(os.environ.get("MEDCOT_LEASE_SECONDS", "30")),
        poll_seconds=float(os.environ.get("MEDCOT_POLL_SECONDS", "1.0")),
        undo_seconds=float(os.environ.get("MEDCOT_UNDO_SECONDS", "3600")),
        **_hosting_settings(),
    )


def _hosting_settings() -> dict:
    space_id = os.environ.get("SPACE_ID") or None
    mode = (os.environ.get("MEDCOT_AUTH_MODE") or ("space" if space_id else "local")).strip().lower()
    if mode not in AUTH_MODES:
        raise SettingsError(f"MEDCOT_AUTH_MODE={mode!r} is not a mode: use one of {', '.join(AUTH_MODES)}")
    return dict(
        auth_mode=mode,
        # Without a login the app only listens on this machine; with one it serves the network (a Space needs it).
        bind_host=os.environ.get("MEDCOT_HOST") or ("127.0.0.1" if mode == "local" else "0.0.0.0"),
        allowed_users=_names("MEDCOT_ALLOWED_USERS"),
        allowed_orgs=_names("MEDCOT_ALLOWED_ORGS"),
        public_chat=_flag("MEDCOT_PUBLIC_CHAT"),
        space_id=space_id,
        auto_resume=_flag("MEDCOT_AUTO_RESUME", default=space_id is not None),
        max_upload_mb=float(os.environ.get("MEDCOT_UPLOAD_MAX_MB") or 200),
        queue_max_size=int(os.environ.get("MEDCOT_QUEUE_MAX_SIZE", "32")),
        concurrency_limit=int(os.environ.get("MEDCOT_CONCURRENCY_LIMIT", "4")),
        gpu_concurrency=int(os.environ.get("MEDCOT_GPU_CONCURRENCY", "1")),
        checked_datasets=int(os.environ.get("MEDCOT_CHECKED_DATASETS", "4")),
        bucket_dir=_bucket_dir(space_id is not None),
        snapshot_minutes=float(os.environ.get("MEDCOT_SNAPSHOT_MINUTES") or 5),
    )


def _bucket_dir(on_space: bool) -> Path | None:
    """``MEDCOT_BUCKET_DIR``; on a Space /data (where a bucket volume is mounted) unless set to ``off``."""
    raw = os.environ.get("MEDCOT_BUCKET_DIR", "").strip()
    if raw.lower() in {"off", "0", "none"}:
        return None
    if raw:
        return Path(raw).expanduser().resolve()
    return SPACE_BUCKET_MOUNT if on_space else None
