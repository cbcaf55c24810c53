"""Which storage mode is on and what survives a restart, in words: the banner above the tabs and the Hosting tab.

Three modes (Settings.storage_mode): *local disk only* (a laptop, or Docker with a plain volume: the database lives
on it directly), *bucket snapshots* (a Space: the database on local disk, snapshots and finished files on the
Storage Bucket mount) and *PostgreSQL* (several replicas or machines share one run store).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from medcot_ui.hosting import bucket_files, snapshots
from medcot_ui.settings import Settings, storage_is_persistent
from medcot_ui.units import duration

MODE_NAMES = {"local": "local disk only", "bucket": "bucket snapshots", "postgresql": "PostgreSQL"}
DEPLOY_HINT = "See docs/DEPLOY.md."


@dataclass(frozen=True)
class StorageStatus:
    mode: str
    text: str  # Markdown, one paragraph
    warning: bool  # something will be lost at a restart


def bucket_mounted(settings: Settings) -> bool:
    """Whether the bucket folder is a real mount (off a Space and outside a container: any folder will do)."""
    if settings.bucket_dir is None or not settings.bucket_dir.is_dir():
        return False
    return storage_is_persistent(settings.bucket_dir, settings.on_space, os.environ.get("MEDCOT_CONTAINER") == "1")


def last_snapshot_words(settings: Settings, now: float | None = None) -> str:
    status = snapshots.read_status(settings)
    if not status.get("written_at"):
        line = "no snapshot written yet"
    else:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status["written_at"]))
        age = (time.time() if now is None else now) - status["written_at"]
        line = f"last snapshot {stamp} ({duration(max(age, 0))} ago)"
    if status.get("error"):
        line += f"; the last try failed: {status['error']}"
    return line


def status(settings: Settings, now: float | None = None) -> StorageStatus:
    mode = settings.storage_mode
    head = f"**Storage: {MODE_NAMES[mode]}.**"
    if mode == "bucket":
        if not bucket_mounted(settings):
            return StorageStatus(mode, f"**Storage is not persistent.** No Storage Bucket is mounted at "
                                       f"`{settings.bucket_dir}`: runs, uploads and the database in `{settings.home}` "
                                       f"will be lost when this app restarts. Attach a bucket to the Space as a volume "
                                       f"at `{settings.bucket_dir}`. {DEPLOY_HINT}", True)
        return StorageStatus(mode, f"{head} The database works on local disk; snapshots and finished files go to "
                                   f"the bucket at `{settings.bucket_dir}` ({last_snapshot_words(settings, now)}).",
                             False)
    if mode == "local" and settings.bucket_dir is not None:  # MEDCOT_HOME inside the mount: SQLite there corrupts
        return StorageStatus(mode, f"**Storage is not safe.** The database `{settings.sqlite_path}` is on the bucket "
                                   f"mount `{settings.bucket_dir}`, which has no file locking: keep MEDCOT_HOME on "
                                   f"local disk (the default on a Space). {DEPLOY_HINT}", True)
    if not settings.persistent_storage:
        where = (f"Attach a Storage Bucket to the Space as a volume at /data. {DEPLOY_HINT}" if settings.on_space
                 else "Mount a volume there (e.g. `docker run -v medcot-data:/data ...`).")
        what = "Runs' files and uploads" if mode == "postgresql" else "Runs, uploads and the database"
        return StorageStatus(mode, f"**Storage is not persistent.** {what} in `{settings.home}` will be lost when "
                                   f"this app restarts or is rebuilt. {where}", True)
    return StorageStatus(mode, f"{head} Everything is kept in `{settings.home}`.", False)


def banner(settings: Settings) -> StorageStatus | None:
    """What the page shows above the tabs: always on a Space, in a container or with a bucket; on a laptop
    only a warning."""
    found = status(settings)
    hosted = settings.on_space or os.environ.get("MEDCOT_CONTAINER") == "1" or settings.bucket_dir is not None
    return found if hosted or found.warning else None


def hosting_view(settings: Settings, now: float | None = None) -> str:
    """The Hosting tab: the mode, where each thing lives, and what the mount holds."""
    found = status(settings, now)
    rows = [("storage mode", MODE_NAMES[found.mode]), ("data directory", f"`{settings.home}`"),
            ("database", f"`{settings.sqlite_path}`" if settings.sqlite_path else "PostgreSQL (MEDCOT_DATABASE_URL)")]
    if found.mode == "bucket":
        kept = snapshots.recorded(settings.bucket_dir) if bucket_mounted(settings) else []
        copies = bucket_files.copies(settings.bucket_dir) if bucket_mounted(settings) else []
        rows += [("bucket mount", f"`{settings.bucket_dir}`"), ("last snapshot", last_snapshot_words(settings, now)),
                 ("snapshots on the bucket", f"{len(kept)} (the newest {snapshots.KEEP} are kept)"),
                 ("file sets on the bucket", f"{len(copies)} (checkpoints, adapters, exports)"),
                 ("snapshot schedule", f"after every run or evaluation state change, every "
                                       f"{settings.snapshot_minutes:g} min while work runs, and on shutdown")]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"{found.text}\n\n| | |\n|---|---|\n{table}"
